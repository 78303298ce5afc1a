"""security@: cases, case keys and parties, reminders."""
