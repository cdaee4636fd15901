"""Destination Controls > Test TLS: probe a domain's mail servers, one server or one of our own
listeners as delivery would meet them (``gateway.tlsprobe``), and keep each run (``probe_history``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from django.shortcuts import render

from appliance import workflow
from appliance.roles import Capability, can, require, requires
from appliance.views.common import ConsoleRequest, form_page
from destinations import probe
from destinations.models import ProbeSource, TlsProbeRun
from gateway import probe_history, tlsprobe
from gateway.forms import TlsTestForm

TEST = probe.TEST_CAPABILITY


@dataclass
class TlsServerRow:
    """One server of a Test TLS run, in the words of CheckTLS's TestReceiver."""

    probe: tlsprobe.HostProbe
    server: str  # host and address:port
    connect: str
    starttls: str
    tls: str
    cert: str
    name: str
    transcript: list[str]

    @property
    def ok(self) -> bool:
        return self.probe.verified


def _tls_server_row(found: tlsprobe.HostProbe, domain: str) -> TlsServerRow:
    where = f"{found.address}:{found.port}" if found.address else "no address"
    lines = tlsprobe.transcript(found, domain) if found.steps else [f"{found.host}: {found.error}"]
    return TlsServerRow(
        found,
        f"{found.host} [{where}]",
        found.connection_text,
        found.starttls_text or "—",
        found.tls_text or "—",
        found.certificate_text or "—",
        found.name_text or "—",
        lines,
    )


def _tls_report(domain: str, probes: list[tlsprobe.HostProbe]) -> dict:
    rows = [_tls_server_row(found, domain) for found in probes]
    modes = [(mode.label, [found.outcome(mode) for found in probes]) for mode in tlsprobe.MODES]
    return {"domain": domain, "rows": rows, "modes": modes}


@requires(Capability.VIEW_CONFIG)
def tls_test(request: ConsoleRequest):
    """Test TLS: probe a domain's mail servers (or one server) with the running configuration, as
    ``tlsverify`` does, and show CheckTLS's per-server table and what each TLS Support mode would do;
    the run is kept, and compared with the run of the same test before it."""
    running = workflow.machine_config()
    listeners = [item["listener_name"] for item in running.get("listeners", [])]
    form = TlsTestForm(request.POST or None, listeners=listeners)
    if request.method == "POST":
        require(request.user, TEST)

    def run_test(template: str, context: dict):
        domain = form.cleaned_data["domain"]
        host, port = form.cleaned_data["host"]
        listener = form.cleaned_data["listener"]
        probes = asyncio.run(tlsprobe.probe(running, domain, host, port, listener))
        run = probe_history.record(
            probe_history.Target.of(domain, host, port, listener),
            probes,
            request.user.username,
            ProbeSource.GUI,
        )
        context = {**context, "tls_report": _tls_report(domain, probes), "tls_history": _tls_history(run)}
        return render(request, template, context)

    return form_page(
        request,
        form,
        run_test,
        full_template="gateway/tls_test.html",
        partial_template="gateway/tls_test_form.html",
        context={"may_test": can(request.user, TEST), "tls_report": None},
    )


def _tls_history(run: TlsProbeRun) -> dict:
    comparison = probe_history.compare(run)
    previous = comparison.previous
    return {
        "target": run.target,
        "previous": previous,
        "previous_when": probe_history.when(previous) if previous else "",
        "differences": comparison.differences,
        "runs": [(probe_history.when(each), each) for each in probe_history.recent(run)],
    }
