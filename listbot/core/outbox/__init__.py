"""The way out: the audience gate, delivery from the outbox, the SMTP/Maildir transport,
alerts and reply limits.
"""
