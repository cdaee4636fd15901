"""Alerts the gateway sends: the message, its record, and the once-an-hour rule per subject.

An alert goes to the recipients subscribed to its class and severity, through the
gateway itself (spooled and delivered like any message, from the null sender so it
never bounces back). Each sent alert is a JSON line in ``DATA_DIR/logs/alerts``,
which Monitor > Alerts lists and which the once-per-hour rule reads back after a
restart.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

from django.conf import settings

REPEAT_AFTER = datetime.timedelta(hours=1)
SHOWN = 200


@dataclass
class SentAlert:
    time: str  # ISO 8601, UTC
    alert_class: str
    severity: str
    key: str  # what the once-an-hour rule counts by, e.g. "tls-required:example.com"
    subject: str
    text: str
    recipients: list[str]
    mid: int = 0


def log_path() -> Path:
    return settings.DATA_DIR / "logs" / "alerts"


def recent(limit: int = SHOWN) -> list[SentAlert]:
    """The newest alerts first."""
    try:
        lines = log_path().read_text().splitlines()[-limit:]
    except FileNotFoundError:
        return []
    return [alert for alert in map(_parsed, reversed(lines)) if alert is not None]


def _parsed(line: str) -> SentAlert | None:
    """A record line; None for a blank one or one a crash cut short (it was appended, not fsync'd)."""
    try:
        return SentAlert(**json.loads(line))
    except (ValueError, TypeError):
        return None


def last_sent_by_key() -> dict[str, datetime.datetime]:
    return {alert.key: datetime.datetime.fromisoformat(alert.time) for alert in reversed(recent(10_000))}


def record(alert: SentAlert) -> None:
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(asdict(alert)) + "\n")


def message(alert: SentAlert, hostname: str) -> bytes:
    mail = EmailMessage(policy=SMTP)
    mail["From"] = f"Mail Gateway Alerts <alert@{hostname}>"
    mail["To"] = ", ".join(alert.recipients)
    mail["Subject"] = alert.subject
    mail["Date"] = format_datetime(datetime.datetime.fromisoformat(alert.time))
    mail["Message-ID"] = make_msgid(domain=hostname)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(alert.text + "\n")
    return mail.as_bytes()
