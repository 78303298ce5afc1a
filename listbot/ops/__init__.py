"""Running it: the service lifecycle (signals, reload, watchdog), doctor, MTA maps."""
