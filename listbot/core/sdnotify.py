"""The systemd notify protocol, spoken directly: one datagram to $NOTIFY_SOCKET.

Without NOTIFY_SOCKET (not under systemd) every call is a no-op, so the daemon
runs the same way in a terminal, in tests and under Type=notify-reload.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger("listbot.sdnotify")


def _clean(value: str) -> str:
    # One field per line: a newline in a STATUS text would forge another field.
    return value.replace("\r", " ").replace("\n", " ")


class Notifier:
    def __init__(self, address: str | None) -> None:
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        self.address = address or None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str) -> bool:
        if self.address is None:
            return False
        payload = "\n".join(f"{k}={_clean(v)}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(payload, self.address)
        except OSError as exc:  # systemd gone or socket full: never fatal for the daemon
            log.warning("sdnotify.failed", error=type(exc).__name__)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY="1", STATUS=status)

    def reloading(self) -> bool:
        # notify-reload wants the CLOCK_MONOTONIC instant the reload began.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(RELOADING="1", MONOTONIC_USEC=str(usec))

    def stopping(self, status: str = "draining") -> bool:
        return self.send(STOPPING="1", STATUS=status)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")


def watchdog_interval(env: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between pings (half of WatchdogSec), or None when no watchdog is set."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(pid if pid is not None else os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2
