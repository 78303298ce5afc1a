"""listbot: the mail robot of an open-source project's security team."""

__version__ = "0.1.0"
