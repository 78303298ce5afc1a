"""The embargo timeline as a value: its instants, the steps that derived them, its reminders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from listbot.core.clock import ensure_utc

PublicBasis = Literal["default", "requested", "exploited"]
ReminderKind = Literal["predisclosure_due", "no_patch", "release_day"]


@dataclass(frozen=True)
class Step:
    label: str
    value: datetime
    derivation: str


@dataclass(frozen=True)
class Timeline:
    """The last step labelled "pre-disclosure" / "public release" holds the current value."""

    arrival: datetime
    predisclosure_at: datetime
    public_at: datetime
    public_basis: PublicBasis
    steps: tuple[Step, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "arrival": utc_iso(self.arrival),
            "predisclosure_at": utc_iso(self.predisclosure_at),
            "public_at": utc_iso(self.public_at),
            "public_basis": self.public_basis,
            "steps": [
                {"label": s.label, "value": utc_iso(s.value), "derivation": s.derivation}
                for s in self.steps
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timeline:
        basis = data["public_basis"]
        if basis not in ("default", "requested", "exploited"):
            raise ValueError(f"unknown public_basis {basis!r}")
        steps = tuple(
            Step(str(s["label"]), _parse_iso(s["value"]), str(s["derivation"]))
            for s in data["steps"]
        )
        return cls(
            _parse_iso(data["arrival"]),
            _parse_iso(data["predisclosure_at"]),
            _parse_iso(data["public_at"]),
            basis,
            steps,
        )


@dataclass(frozen=True)
class Reminder:
    kind: ReminderKind
    at: datetime

    @property
    def key(self) -> str:
        """Stable per timeline instant: a store records each key as sent exactly once."""
        return f"{self.kind}:{self.at:%Y-%m-%dT%H:%M:%SZ}"


def utc_iso(value: datetime) -> str:
    return ensure_utc(value).isoformat().replace("+00:00", "Z")


def _parse_iso(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO datetime string, got {text!r}")
    return ensure_utc(datetime.fromisoformat(text))
