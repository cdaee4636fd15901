"""What delivery tells people: bounce notices (DSN) to senders, and alerts to the alert recipients.

Both are messages the gateway spools and delivers itself, from the null sender so they never
bounce back. The required-TLS alert goes out at most once an hour per domain
(``alert_mail.REPEAT_AFTER``); the expiry alerts once per threshold (``gateway.expiry_alerts``).
"""

from __future__ import annotations

import asyncio
import datetime
from collections import defaultdict
from collections.abc import Callable

from appliance import alerts
from appliance.alerts import AlertClass, Severity
from appliance.config.sections import Config
from gateway import alert_mail, bounces, maillog
from gateway.spool import Envelope
from tracking.models import Event


class Notices:
    """``hostname()`` names the appliance in what it writes; ``enqueue(mid)`` hands a notice to delivery."""

    def __init__(self, shared, hostname: Callable[[], str], enqueue: Callable[[int], None]):
        self.shared, self.hostname, self.enqueue = shared, hostname, enqueue
        self.alerted: dict[str, datetime.datetime] = {}  # alert key -> when last sent

    def load(self) -> None:
        """When each alert was last sent, from the record (a restarted gateway remembers)."""
        self.alerted = alert_mail.last_sent_by_key()

    def record_failures(
        self, mid: int, kind: str, failed: dict[str, str], connection_of: dict[str, int | None]
    ) -> None:
        """One tracking event per reason and connection, naming the recipients it concerns."""
        grouped: dict[tuple[str, int | None], list[str]] = defaultdict(list)
        for recipient, why in failed.items():
            grouped[(why, connection_of.get(recipient))].append(recipient)
        for (why, dcid), recipients in grouped.items():
            self.shared.recorder.event(mid, kind, why, recipients, dcid)

    async def bounce(
        self,
        envelope: Envelope,
        data: bytes,
        failed: dict[str, str],
        connection_of: dict[str, int | None] | None = None,
    ) -> None:
        rids = {recipient: envelope.rcpt_tos.index(recipient) for recipient in failed}
        for recipient, why in failed.items():
            maillog.info(f"Bounced: MID {envelope.mid} to RID {rids[recipient]} - {why}")
        self.record_failures(envelope.mid, Event.Kind.BOUNCED, failed, connection_of or {})
        if not envelope.mail_from:
            return  # never a bounce of a bounce
        mid = self.shared.mids.take()
        report = bounces.delivery_status_notification(envelope, data, failed, self.hostname())
        notice = Envelope(
            mid=mid,
            mail_from="",
            rcpt_tos=[envelope.mail_from],
            received=datetime.datetime.now(datetime.UTC).isoformat(),
            extra={"bounce_of": envelope.mid},
        )
        await asyncio.get_running_loop().run_in_executor(None, self.shared.spool.accept, notice, report)
        self.shared.recorder.message(notice, report)
        self.shared.recorder.event(
            envelope.mid, Event.Kind.NOTICE, f"Bounce notice MID {mid} sent to <{envelope.mail_from}>"
        )
        maillog.info(f"MID {mid} generated bounce of MID {envelope.mid}")
        self.enqueue(mid)

    async def tls_required_alert(self, config: Config, domain: str, why: str) -> None:
        """Destination Controls' "Send an alert when a required TLS connection fails": to the
        System/Warning recipients, at most once an hour per domain."""
        [controls] = config.get("destination_controls") or [{"send_tls_required_alert": False}]
        key = f"tls-required:{domain}"
        now = datetime.datetime.now(datetime.UTC)
        last = self.alerted.get(key)
        if not controls.get("send_tls_required_alert") or (last and now - last < alert_mail.REPEAT_AFTER):
            return
        self.alerted[key] = now
        hostname = self.hostname()
        await self.send_alert(
            config,
            AlertClass.SYSTEM,
            Severity.WARNING,
            key,
            alerts.subject(
                AlertClass.SYSTEM, Severity.WARNING, hostname, f"TLS was required for {domain} but failed"
            ),
            f"The appliance {hostname} could not deliver mail to {domain}: its Destination Controls "
            f"entry requires TLS, and {why}. The messages stay queued and are retried.",
        )

    async def send_alert(
        self, config: Config, alert_class: str, severity: str, key: str, subject: str, text: str
    ) -> bool:
        """Spool an alert to the recipients subscribed to its class and severity and record it;
        False when nobody is subscribed."""
        recipients = alerts.recipients_for(alert_class, severity, config)
        if not recipients:
            return False
        alert = alert_mail.SentAlert(
            time=datetime.datetime.now(datetime.UTC).isoformat(),
            alert_class=alert_class,
            severity=severity,
            key=key,
            subject=subject,
            text=text,
            recipients=recipients,
            mid=self.shared.mids.take(),
        )
        envelope = Envelope(
            mid=alert.mid, mail_from="", rcpt_tos=recipients, received=alert.time, extra={"alert": key}
        )
        loop = asyncio.get_running_loop()
        data = alert_mail.message(alert, self.hostname())
        await loop.run_in_executor(None, self.shared.spool.accept, envelope, data)
        self.shared.recorder.message(envelope, data)
        await loop.run_in_executor(None, alert_mail.record, alert)
        maillog.info(f"MID {alert.mid} alert: {alert.subject} to {', '.join(recipients)}")
        self.enqueue(alert.mid)
        return True
