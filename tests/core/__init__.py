"""Core: store, intake, worker, mail primitives, config and settings, the daemon as a whole."""
