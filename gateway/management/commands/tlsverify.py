"""tlsverify DOMAIN [HOST[:PORT]]: the ESA's TLS Verify, with CheckTLS's transcript, compared with the last run."""

from __future__ import annotations

import asyncio
import sys

from appliance import workflow
from appliance.management.base import ApplianceCommand, Refused
from appliance.roles import require
from destinations import probe
from destinations.models import ProbeSource
from gateway import probe_history, tlsprobe


class Command(ApplianceCommand):
    help = (
        "Probe DOMAIN's mail servers (its MX hosts, its SMTP route, or HOST[:PORT]) for STARTTLS and show "
        "each step, the certificate chain, the name check and what each TLS Support mode would do, then what "
        "changed since the last run of the same test. "
        "Exit status: 0 TLS up and verified, 3 TLS up but not verified, 4 no TLS or no connection."
    )

    def add_arguments(self, parser):
        parser.add_argument("domain", metavar="DOMAIN", help="the destination domain (its name is compared)")
        parser.add_argument(
            "host", metavar="HOST[:PORT]", nargs="?", default="", help="probe this server instead"
        )
        parser.add_argument(
            "--listener",
            metavar="NAME",
            help="check my own listener: probe it as an outside MTA would; its certificate should cover the "
            "interface's host name and the host names of DOMAIN's MX records",
        )

    def run(self, user, domain, host, listener=None, **options):
        require(user, probe.TEST_CAPABILITY)
        try:
            domain = tlsprobe.target_domain(domain)
            host, port = tlsprobe.target_host(host)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        config = workflow.machine_config()
        try:
            probes = asyncio.run(tlsprobe.probe(config, domain, host, port, listener or ""))
        except ValueError as exc:
            raise Refused(str(exc)) from None
        for found in probes:
            lines = tlsprobe.transcript(found, domain) if found.steps else [f"{found.host}: {found.error}"]
            self.stdout.write("\n".join(lines) + "\n")
        self.stdout.write(f"TLS Support verdicts for {domain}:")
        for mode in tlsprobe.MODES:
            outcomes = ", ".join(f"{found.host} {found.outcome(mode)}" for found in probes)
            self.stdout.write(f"  {mode.label}: {outcomes}")
        target = probe_history.Target.of(domain, host, port, listener or "")
        run = probe_history.record(target, probes, user.username, ProbeSource.CONSOLE)
        self.print_comparison(probe_history.compare(run))
        self.stdout.flush()
        sys.exit(run.status)

    def print_comparison(self, comparison: probe_history.Comparison) -> None:
        previous = comparison.previous
        if previous is None:
            self.stdout.write(
                f"Nothing to compare with: this is the first run of this test ({comparison.run.target})."
            )
            return
        self.stdout.write(f"Compared with the last run ({probe_history.when(previous)}, by {previous.who}):")
        for line in comparison.differences or ["No change."]:
            self.stdout.write(f"  {line}")
