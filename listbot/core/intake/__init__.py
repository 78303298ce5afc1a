"""The ways in: LMTP/SMTP servers on the daemon's loop and the IMAP poller; each stores
before it acknowledges.
"""
