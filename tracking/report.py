"""Monitor > TLS Connections: the ESA's summaries and per-domain details, counted in the database.

Each figure is one aggregate over ``Connection`` rows of a time range: a page view runs
three queries per direction, whatever the traffic.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

from tracking.models import Connection, Direction, TlsPolicy, TlsResult

# The per-domain columns, in the order the tables and the CSV show them.
COUNTS = {
    "required_success": Q(policy=TlsPolicy.REQUIRED, result=TlsResult.SUCCESS),
    "required_failed": Q(policy=TlsPolicy.REQUIRED, result=TlsResult.FAILED),
    "preferred_success": Q(policy=TlsPolicy.PREFERRED, result=TlsResult.SUCCESS),
    "preferred_failed": Q(policy=TlsPolicy.PREFERRED, result=TlsResult.FAILED),
    "tls": Q(result=TlsResult.SUCCESS),
    "no_tls": ~Q(result=TlsResult.SUCCESS),
}
LABELS = {
    "required_success": "Required TLS: Successful",
    "required_failed": "Required TLS: Failed",
    "preferred_success": "Preferred TLS: Successful",
    "preferred_failed": "Preferred TLS: Failed",
    "tls": "Total TLS Connections",
    "no_tls": "Connections without TLS",
    "total": "Total Connections",
}
MESSAGE_LABELS = {
    "tls_messages": "Messages over TLS",
    "clear_messages": "Messages without TLS",
    "messages": "Total Messages",
}
DOMAIN_COLUMNS = (*COUNTS, "total", "tls_messages")
DOMAIN_HEADINGS = {**LABELS, "tls_messages": "Messages over TLS"}
HOURLY_UP_TO = datetime.timedelta(days=2)  # longer ranges are charted by day


def _aggregates() -> dict:
    sums = {name: Count("id", filter=condition) for name, condition in COUNTS.items()}
    messages_over_tls = Sum("messages", filter=Q(result=TlsResult.SUCCESS))
    return {
        **sums,
        "total": Count("id"),
        "tls_messages": Coalesce(messages_over_tls, 0),
        "messages": Coalesce(Sum("messages"), 0),
    }


@dataclass
class Bucket:
    start: datetime.datetime
    tls: int
    failed: int
    no_tls: int

    @property
    def total(self) -> int:
        return self.tls + self.failed + self.no_tls


@dataclass
class DirectionReport:
    direction: str
    summary: dict[str, int]
    domains: list[dict]
    buckets: list[Bucket]

    @property
    def label(self) -> str:
        return Direction(self.direction).label

    def rows(self) -> list[tuple[str, int, float]]:
        """The connections summary: label, count, percent of all connections."""
        total = self.summary["total"] or 1
        return [(LABELS[key], self.summary[key], 100 * self.summary[key] / total) for key in LABELS]

    def message_rows(self) -> list[tuple[str, int, float]]:
        messages = dict(self.summary, clear_messages=self.summary["messages"] - self.summary["tls_messages"])
        total = messages["messages"] or 1
        return [(MESSAGE_LABELS[key], messages[key], 100 * messages[key] / total) for key in MESSAGE_LABELS]


def connections(machine: str, direction: str, start: datetime.datetime, end: datetime.datetime):
    return Connection.objects.of(machine).filter(direction=direction, started__gte=start, started__lt=end)


def domain_rows(
    machine: str, direction: str, start: datetime.datetime, end: datetime.datetime, limit: int | None = None
):
    """Per domain, the most connections first."""
    rows = (
        connections(machine, direction, start, end)
        .values("domain")
        .annotate(**_aggregates())
        .order_by("-total", "domain")
    )
    return list(rows[:limit] if limit else rows)


def build(
    machine: str, direction: str, start: datetime.datetime, end: datetime.datetime, domains_shown: int
) -> DirectionReport:
    chosen = connections(machine, direction, start, end)
    summary = chosen.aggregate(**_aggregates())
    trunc = TruncHour if end - start <= HOURLY_UP_TO else TruncDay
    counted = (
        chosen.annotate(bucket=trunc("started"))
        .values("bucket")
        .annotate(
            tls=Count("id", filter=Q(result=TlsResult.SUCCESS)),
            failed=Count("id", filter=Q(result=TlsResult.FAILED)),
            no_tls=Count("id", filter=Q(result=TlsResult.NONE)),
        )
        .order_by("bucket")
    )
    buckets = [Bucket(row["bucket"], row["tls"], row["failed"], row["no_tls"]) for row in counted]
    return DirectionReport(
        direction, summary, domain_rows(machine, direction, start, end, domains_shown), buckets
    )


# --- the chart: stacked bars, drawn by the template as SVG ------------------------------------

CHART_WIDTH, CHART_HEIGHT = 720, 160


@dataclass
class Bar:
    start: datetime.datetime
    x: float
    width: float
    segments: list[tuple[str, float, float, int]]  # (css class, y, height, count), bottom first
    total: int


def _step_start(moment: datetime.datetime, hourly: bool) -> datetime.datetime:
    local = timezone.localtime(moment)
    return (
        local.replace(minute=0, second=0, microsecond=0)
        if hourly
        else local.replace(hour=0, minute=0, second=0, microsecond=0)
    )


def chart(report: DirectionReport, start: datetime.datetime, end: datetime.datetime) -> tuple[list[Bar], int]:
    """One bar per hour (or day) of the range, empty ones included, and the tallest bar's count."""
    hourly = end - start <= HOURLY_UP_TO
    step = datetime.timedelta(hours=1) if hourly else datetime.timedelta(days=1)
    counted = {timezone.localtime(b.start): b for b in report.buckets}
    moments = []
    moment = _step_start(start, hourly)
    while moment < end:
        moments.append(moment)
        moment = _step_start(moment + step, hourly)
    tallest = max((b.total for b in report.buckets), default=0)
    scale = CHART_HEIGHT / tallest if tallest else 0
    width = CHART_WIDTH / max(len(moments), 1)
    bars = []
    for index, moment in enumerate(moments):
        bucket = counted.get(moment) or Bucket(moment, 0, 0, 0)
        y, segments = float(CHART_HEIGHT), []
        for css, count in (("tls", bucket.tls), ("failed", bucket.failed), ("clear", bucket.no_tls)):
            height = count * scale
            y -= height
            segments.append((css, y, height, count))
        bars.append(Bar(moment, index * width, max(width - 1, 1), segments, bucket.total))
    return bars, tallest
