"""The certificate expiry alerts, sent by the gateway (``certificates.expiry_alerts`` words them).

``ExpiryAlerts.run`` checks the running configuration at start and every ``CHECK_SECONDS``;
``check(now)`` is one check.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable

from appliance.alerts import AlertClass
from appliance.config.sections import Config
from certificates.expiry import threshold_reached
from certificates.expiry_alerts import Watched, alert_key, message, parse_key, watched
from gateway import alert_mail, maillog

CHECK_SECONDS = 3600


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ExpiryAlerts:
    """Sends the expiry alerts of the running configuration through ``notices`` (the delivery
    engine's ``Notices``); ``running_config()`` gives the running configuration as section data."""

    def __init__(
        self,
        notices,
        running_config: Callable[[], Config],
        clock: Callable[[], datetime.datetime] = _utc_now,
    ):
        self.notices, self.running_config, self.clock = notices, running_config, clock
        self.alerted: dict[str, set[int]] | None = None  # fingerprint -> thresholds alerted; None: unread

    def load(self) -> None:
        """What the record of sent alerts says was alerted already (at start, or after a restart)."""
        alerted: dict[str, set[int]] = {}
        for key in alert_mail.last_sent_by_key():
            parsed = parse_key(key)
            if parsed:
                alerted.setdefault(parsed[0], set()).add(parsed[1])
        self.alerted = alerted

    def due(self, item: Watched, now: datetime.datetime) -> int | None:
        """The threshold to alert for ``item`` now, or None."""
        threshold = threshold_reached(item.not_after, now)
        if threshold is None:
            return None
        if any(done <= threshold for done in self.alerted.get(item.fingerprint, ())):
            return None  # this one, or a nearer one, was alerted already
        return threshold

    async def check(self, now: datetime.datetime | None = None) -> list[str]:
        """One check of the running configuration at ``now`` (default: the clock); the keys sent."""
        if self.alerted is None:
            await asyncio.get_running_loop().run_in_executor(None, self.load)
        now = now or self.clock()
        config = self.running_config()
        if not config:
            return []  # the gateway has no running configuration yet
        hostname = self.notices.hostname()
        sent = []
        for item in watched(config, maillog.warning):
            threshold = self.due(item, now)
            if threshold is None:
                continue
            severity, subject, text = message(item, threshold, now, hostname)
            key = alert_key(item.fingerprint, threshold)
            if await self.notices.send_alert(config, AlertClass.SYSTEM, severity, key, subject, text):
                self.alerted.setdefault(item.fingerprint, set()).add(threshold)
                sent.append(key)
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        """Check at start, then every ``CHECK_SECONDS`` until ``stop``."""
        while not stop.is_set():
            try:
                await self.check()
            except Exception as error:  # a surprise must not end the checks, nor the gateway
                maillog.warning(f"Certificate expiry check failed: {error!r}")
            try:
                await asyncio.wait_for(stop.wait(), CHECK_SECONDS)
            except TimeoutError:
                pass
