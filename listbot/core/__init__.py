"""The core every capability uses: message model, config, mail primitives, store, intake,
worker and the way out.
"""
