"""Typed, frozen settings of the core, and the means every section is read with at load.

model: the core types; reader: the document reader and per-section helpers that
collect problems with key paths; sections: the core sections. Loading the file and
putting every section together is listbot.settings' job (core imports no capability).
"""

from listbot.core.config.model import (
    Config,
    DeliveryConfig,
    Endpoint,
    ListConfig,
    ListKind,
    SmtpConfig,
    StartTLS,
    TeamMember,
)
from listbot.core.config.reader import Document, Reader, parse_endpoint, raw_table, section
from listbot.core.config.sections import EXTENSION_SECTIONS, parse_core

__all__ = [
    "EXTENSION_SECTIONS",
    "Config",
    "DeliveryConfig",
    "Document",
    "Endpoint",
    "ListConfig",
    "ListKind",
    "Reader",
    "SmtpConfig",
    "StartTLS",
    "TeamMember",
    "parse_core",
    "parse_endpoint",
    "raw_table",
    "section",
]
