"""When a certificate's expiry is worth a word: the thresholds the diagnostics and the alerts share.

A certificate crosses a threshold when its days left fall to it: at 90, 60, 30, 14, 7, 3 and 1
day(s) before its Not Valid After, then once more when it has expired.
"""

from __future__ import annotations

import datetime

from appliance.alerts import Severity

THRESHOLDS = (90, 60, 30, 14, 7, 3, 1)
EXPIRED = 0  # the threshold an expired certificate has reached
_SEVERITIES = {
    90: Severity.INFORMATION,
    60: Severity.INFORMATION,
    30: Severity.WARNING,
    14: Severity.WARNING,
    7: Severity.WARNING,
}


def days_left(not_after: datetime.datetime, now: datetime.datetime | None = None) -> int:
    """Whole days until ``not_after``, rounded down; negative once it has passed."""
    remaining = not_after - (now or datetime.datetime.now(datetime.UTC))
    return remaining.days


def threshold_reached(not_after: datetime.datetime, now: datetime.datetime | None = None) -> int | None:
    """The smallest threshold the certificate has reached (``EXPIRED`` once expired), or None
    while it has more than 90 days left."""
    moment = now or datetime.datetime.now(datetime.UTC)
    if moment > not_after:
        return EXPIRED
    left = days_left(not_after, moment)
    reached = [days for days in THRESHOLDS if left < days]
    return min(reached) if reached else None


def severity_at(threshold: int) -> Severity:
    """How bad reaching ``threshold`` is, for the alerts and the diagnostics alike: the ESA's scale,
    critical from 3 days left (what subscribers to Critical alone are told), a warning from 30."""
    return _SEVERITIES.get(threshold, Severity.CRITICAL)
