"""The moderation service: rule files and the pure classifier, and decisions by signed
reply or by shell.
"""
