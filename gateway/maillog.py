"""The mail logs: ``DATA_DIR/logs/mail_logs`` in the ESA's format, rotated as mail_logs.1, .2, …

    Fri Nov 27 23:41:07 2026 Info: New SMTP ICID 5 interface Management (127.0.0.1) address 127.0.0.1 …
    Fri Nov 27 23:41:07 2026 Info: ICID 5 TLS success protocol TLSv1.3 cipher TLS_AES_256_GCM_SHA384

Times are the appliance's local time. Only the gateway's processes write them.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
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
    """``mail_logs``, appended to by every gateway process (each line one write, so lines never mix)
    and rotated by the first of them only: ``rotate_if_full`` asks the file its size once a poll,
    not at every line, and ``reopen_if_rotated`` makes the other processes follow the new file. Lines
    a process writes between the rotation and its next poll land at the end of ``mail_logs.1``."""

    def __init__(self, path: Path):
        super().__init__(path, backupCount=BACKUPS, encoding="utf-8", errors="backslashreplace")

    def rotate_if_full(self) -> None:
        try:
            full = os.stat(self.baseFilename).st_size >= MAX_BYTES
        except FileNotFoundError:
            full = False
        if full:
            with self.lock:
                self.doRollover()

    def reopen_if_rotated(self) -> None:
        try:
            moved = os.stat(self.baseFilename).st_ino != os.fstat(self.stream.fileno()).st_ino
        except FileNotFoundError:
            moved = True
        if moved:
            with self.lock:
                self.stream.close()
                self.stream = self._open()


def log_path() -> Path:
    return settings.DATA_DIR / "logs" / FILE_NAME


def open_log() -> None:
    """Send ``logger`` to the mail_logs file (once per process)."""
    if _handler():
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


def _handler() -> MailLogFile | None:
    return next((handler for handler in logger.handlers if isinstance(handler, MailLogFile)), None)


def rotate_if_full() -> None:
    """Rotate ``mail_logs`` once it holds ``MAX_BYTES`` (the first gateway process, once a poll)."""
    if handler := _handler():
        handler.rotate_if_full()


def reopen_if_rotated() -> None:
    """Follow a rotation another process made (every other gateway process, once a poll)."""
    if handler := _handler():
        handler.reopen_if_rotated()
