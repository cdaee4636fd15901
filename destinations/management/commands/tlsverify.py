"""tlsverify DOMAIN [HOST[:PORT]]: the ESA's TLS Verify, with CheckTLS's transcript."""

from __future__ import annotations

import asyncio
import sys

from appliance import workflow
from appliance.management.base import ApplianceCommand, Refused
from appliance.roles import require
from destinations import probe, tlsprobe


class Command(ApplianceCommand):
    help = (
        "Probe DOMAIN's mail servers (its MX hosts, its SMTP route, or HOST[:PORT]) for STARTTLS and show "
        "each step, the certificate chain, the name check and what each TLS Support mode would do. "
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
        config = workflow.running_config()
        if listener:
            try:
                probes = [asyncio.run(tlsprobe.probe_listener(config, listener, domain))]
            except ValueError as exc:
                raise Refused(str(exc)) from None
        else:
            probes = asyncio.run(tlsprobe.probe_domain(config, domain, host, port))
        for found in probes:
            lines = tlsprobe.transcript(found, domain) if found.steps else [f"{found.host}: {found.error}"]
            self.stdout.write("\n".join(lines) + "\n")
        self.stdout.write(f"TLS Support verdicts for {domain}:")
        for mode in tlsprobe.MODES:
            outcomes = ", ".join(f"{found.host} {found.outcome(mode)}" for found in probes)
            self.stdout.write(f"  {mode.label}: {outcomes}")
        self.stdout.flush()
        sys.exit(max((found.status for found in probes), default=tlsprobe.NO_TLS))
