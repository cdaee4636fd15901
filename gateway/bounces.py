"""Delivery Status Notifications (RFC 3464): the bounce a sender gets for recipients that failed."""

from __future__ import annotations

import datetime
import re
from email.message import EmailMessage, Message
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from gateway.spool import Envelope

ENHANCED_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")  # RFC 3463: class.subject.detail


def delivery_status_notification(
    envelope: Envelope, data: bytes, failed: dict[str, str], hostname: str
) -> bytes:
    """A multipart/report to ``envelope.mail_from``: words for people, the delivery-status for
    programs, and the headers of the original message."""
    report = EmailMessage(policy=SMTP)
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{hostname}>"
    report["To"] = envelope.mail_from
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = format_datetime(datetime.datetime.now(datetime.UTC))
    report["Message-ID"] = make_msgid(domain=hostname)
    report["Auto-Submitted"] = "auto-replied"
    lines = [
        f"This is the mail gateway at {hostname}.",
        "",
        "Your message could not be delivered to the following recipients:",
        "",
        *(f"  <{recipient}>: {why}" for recipient, why in failed.items()),
    ]
    report.set_content("\n".join(lines) + "\n")
    status = Message()
    status["Content-Type"] = "message/delivery-status"
    blocks = [_block({"Reporting-MTA": f"dns; {hostname}", "Arrival-Date": _date(envelope.received)})]
    for recipient, why in failed.items():
        blocks.append(
            _block(
                {
                    "Final-Recipient": f"rfc822; {recipient}",
                    "Action": "failed",
                    "Status": _status(why),
                    "Diagnostic-Code": f"smtp; {why}",
                }
            )
        )
    status.set_payload(blocks)
    report.make_mixed()
    report.set_type("multipart/report")
    report.set_param("report-type", "delivery-status")
    report.attach(status)
    headers = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"  # the original's header, not its body
    original = EmailMessage(policy=SMTP)
    original.set_content(headers, maintype="text", subtype="rfc822-headers", cte="8bit")
    report.attach(original)
    return report.as_bytes()


def _block(fields: dict[str, str]) -> Message:
    """One group of delivery-status fields (a header block of its own)."""
    block = Message()
    for name, value in fields.items():
        block[name] = value
    return block


def _date(iso: str) -> str:
    return format_datetime(datetime.datetime.fromisoformat(iso))


def _status(why: str) -> str:
    """The enhanced status code at the start of ``why`` ("5.1.1 - …"), made permanent (a message that
    waited too long bounces with its last temporary code, 4.x.x → 5.x.x), else a generic permanent one."""
    first = why.split(" ", 1)[0]
    return "5" + first[1:] if ENHANCED_STATUS.fullmatch(first) and first[0] != "2" else "5.0.0"
