"""security@: cases, case mail, reporter and party keys, reminders of the disclosure timeline."""
