"""The mail logs: ``DATA_DIR/logs/mail_logs`` in the ESA's format, rotated as mail_logs.1, .2, …

    Fri Nov 27 23:41:07 2026 Info: New SMTP ICID 5 interface Management (127.0.0.1) address 127.0.0.1 …
    Fri Nov 27 23:41:07 2026 Info: ICID 5 TLS success protocol TLSv1.3 cipher TLS_AES_256_GCM_SHA384

Times are the appliance's local time. Only the gateway process writes them.
"""

from __future__ import annotations

import logging
import logging.handlers
import time
from pathlib import Path

from django.conf import settings

FILE_NAME = "mail_logs"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 9
LEVELS = {"INFO": "Info", "WARNING": "Warning", "ERROR": "Critical", "CRITICAL": "Critical", "DEBUG": "Debug"}

logger = logging.getLogger("appliance.mail_logs")


class EsaFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(record.created))
        return f"{stamp} {LEVELS.get(record.levelname, record.levelname.title())}: {record.getMessage()}"


class MailLogFile(logging.handlers.RotatingFileHandler):
    """``mail_logs``, rotated at ``MAX_BYTES`` by a size it counts as it writes: the gateway is the
    file's only writer, so it need not stat, seek and format every line twice to ask the file."""

    mail_logs = True

    def __init__(self, path: Path):
        super().__init__(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", errors="backslashreplace"
        )
        self.size = path.stat().st_size if path.exists() else 0

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        self.size += len(text) + 1  # characters, not bytes: near enough for where to rotate
        return text

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802 (logging's name)
        return self.size >= self.maxBytes

    def doRollover(self) -> None:  # noqa: N802 (logging's name)
        super().doRollover()
        self.size = 0


def log_path() -> Path:
    return settings.DATA_DIR / "logs" / FILE_NAME


def open_log() -> None:
    """Send ``logger`` to the mail_logs file (once per process)."""
    if any(getattr(handler, "mail_logs", False) for handler in logger.handlers):
        return
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = MailLogFile(path)
    handler.setFormatter(EsaFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def info(text: str) -> None:
    logger.info(text)


def warning(text: str) -> None:
    logger.warning(text)
