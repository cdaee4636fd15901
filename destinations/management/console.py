"""What the console commands of this app share: subcommands, staging, certificate options, test reports."""

from __future__ import annotations

from appliance.management.base import Refused, SubcommandCommand
from appliance.roles import require
from destinations import probe


class TestingCommand(SubcommandCommand):
    """A destinations command that can also run a connection test."""

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
