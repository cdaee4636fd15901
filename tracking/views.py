"""Monitor > TLS Connections and Monitor > Message Tracking, over the gateway's records."""

from __future__ import annotations

import csv

from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from appliance.models import this_machine
from appliance.roles import MAIL_DATA, requires
from appliance.views.common import ConsoleRequest
from tracking import report
from tracking.forms import TimeRangeForm, TrackingSearchForm
from tracking.models import Connection, Direction, Event, Message

DOMAINS_SHOWN = 50
RESULTS_PAGE_SIZE = 50


@requires(MAIL_DATA)
def tls_connections(request: ConsoleRequest):
    form = TimeRangeForm(request.GET or None)
    if request.GET and not form.is_valid():
        return render(request, "tracking/tls_connections.html", {"form": form}, status=400)
    if not request.GET:
        form = TimeRangeForm({"range": "day"})
        form.is_valid()
    start, end, described = form.span()
    machine = this_machine(request.mode)
    if request.GET.get("format") == "csv":
        return _csv(machine, request.GET.get("direction", ""), start, end)
    reports = []
    for direction in (Direction.INCOMING, Direction.OUTGOING):
        built = report.build(machine, direction, start, end, DOMAINS_SHOWN)
        bars, tallest = report.chart(built, start, end)
        reports.append({"report": built, "bars": bars, "tallest": tallest})
    context = {
        "form": form,
        "reports": reports,
        "start": start,
        "end": end,
        "described": described,
        "domains_shown": DOMAINS_SHOWN,
        "columns": [report.DOMAIN_HEADINGS[key] for key in report.DOMAIN_COLUMNS],
        "chart_width": report.CHART_WIDTH,
        "chart_height": report.CHART_HEIGHT,
        "query": request.GET.urlencode(),
    }
    return render(request, "tracking/tls_connections.html", context)


def _csv(machine: str, direction: str, start, end) -> HttpResponse:
    if direction not in Direction.values:
        raise Http404("Choose the incoming or the outgoing details.")
    label = Direction(direction).label
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = f"{timezone.localtime(start):%Y%m%d%H%M}-{timezone.localtime(end):%Y%m%d%H%M}"
    response["Content-Disposition"] = f'attachment; filename="tls-connections-{label.lower()}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(["Domain", *(report.DOMAIN_HEADINGS[key] for key in report.DOMAIN_COLUMNS)])
    for row in report.domain_rows(machine, direction, start, end):
        writer.writerow([row["domain"], *(row[key] for key in report.DOMAIN_COLUMNS)])
    return response


@requires(MAIL_DATA)
def messages(request: ConsoleRequest):
    form = TrackingSearchForm(request.GET or None)
    results = Message.objects.of(this_machine(request.mode))
    status = 200
    if request.GET:
        if form.is_valid():
            results = _matching(results, form.cleaned_data)
        else:
            results, status = results.none(), 400
    page = Paginator(results.defer("recipients"), RESULTS_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode(), "searched": bool(request.GET)}
    return render(request, "tracking/messages.html", context, status=status)


def _matching(results, data: dict):
    if data["mid"]:
        results = results.filter(mid=data["mid"])
    if data["sender"]:
        results = results.filter(sender__icontains=data["sender"])
    if data["recipient"]:
        results = results.filter(recipients__icontains=data["recipient"])
    if data["subject"]:
        results = results.filter(subject__icontains=data["subject"])
    if data["received_after"]:
        results = results.filter(received__gte=data["received_after"])
    if data["received_before"]:
        results = results.filter(received__lt=data["received_before"])
    return results


@requires(MAIL_DATA)
def message_detail(request: ConsoleRequest, mid: int):
    machine = this_machine(request.mode)
    message = Message.objects.of(machine).filter(mid=mid).first()
    if message is None:
        raise Http404(f"There is no record of MID {mid} (records are kept 90 days).")
    events = list(Event.objects.of(machine).filter(mid=mid))
    dcids = {event.dcid for event in events if event.dcid}
    connections = Connection.objects.of(machine)
    delivery_connections = {c.cid: c for c in connections.filter(direction=Direction.OUTGOING, cid__in=dcids)}
    incoming = (
        connections.filter(direction=Direction.INCOMING, cid=message.icid).first() if message.icid else None
    )
    rows = [(event, delivery_connections.get(event.dcid)) for event in events]
    context = {"message": message, "incoming": incoming, "rows": rows}
    return render(request, "tracking/message_detail.html", context)
