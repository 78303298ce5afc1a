"""Advisories: format, mail, pre-disclosure, staging and release."""
