"""structlog setup: JSON lines on stdout, a console renderer on a terminal.

Events carry ids and list names, never bodies, decrypted text or key material.
"""

from __future__ import annotations

import logging
import sys

import structlog


def setup(fmt: str = "auto", level: int = logging.INFO) -> None:
    console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
    # aiosmtpd logs every SMTP line at DEBUG/INFO through stdlib logging; keep it quiet.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
