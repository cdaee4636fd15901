"""What the console commands of this app share: subcommands, staging, certificate options, test reports."""

from __future__ import annotations

import argparse

from appliance import workflow
from appliance.management.base import ApplianceCommand, Refused, add_common_options
from appliance.roles import require
from destinations import probe


class SubcommandCommand(ApplianceCommand):
    """A command whose first argument chooses what to do (``ldapconfig new …``), each ``do_<name>``."""

    def subcommands(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        def action(name: str, help_text: str) -> argparse.ArgumentParser:
            sub = actions.add_parser(name, help=help_text)
            add_common_options(sub, defaults=False)
            return sub

        return action

    def run(self, user, action, **options):
        return getattr(self, f"do_{action.replace('-', '_')}")(user, **options)

    def stage(self, user, description: str, apply, done: str) -> None:
        self.report(workflow.submit(user, description, apply, source="CLI"), done)

    def print_report(self, user, test) -> None:
        """Run a connection test (Operators and Administrators) and print it; exit 1 if it failed."""
        require(user, probe.TEST_CAPABILITY)
        report = test()
        self.stdout.write("\n".join(report.lines()))
        if not report.passed:
            raise Refused(report.summary)


def add_certificate_options(parser, what: str) -> None:
    """--certificate NAME | --no-certificate; absent: unchanged."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--certificate", metavar="NAME", help=f"the certificate {what}")
    choice.add_argument(
        "--no-certificate", dest="certificate", action="store_const", const="", help="no certificate"
    )


def yes_no(value: bool) -> str:
    return "Yes" if value else "No"
