"""Advisories: format, render, sign, pre-disclose, stage, release at the instant, the
public index.
"""
