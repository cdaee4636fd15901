"""smtproutes: Network > SMTP Routes from the console, as the ESA's, non-interactive."""

from __future__ import annotations

from appliance.management.base import Refused, SubcommandCommand
from appliance.roles import Capability, require
from destinations import routes
from destinations.models import SmtpRoute


def hop(text: str) -> dict:
    try:
        return routes.parse_option(text)
    except ValueError as exc:
        raise Refused(str(exc)) from None


class Command(SubcommandCommand):
    help = (
        "List, add, edit, delete and look up SMTP routes: where mail for a domain goes before MX lookup "
        "(changes are staged; commit applies them)."
    )

    def add_arguments(self, parser):
        action = self.subcommands(parser)

        def hosts(sub):
            sub.add_argument(
                "--host",
                dest="hosts",
                action="append",
                required=True,
                metavar="HOST[:PORT][/PRI]",
                help="a destination host, repeat for several in order; /PRI (or /pri=N) 0-65535, lower first; "
                "USEDNS delivers by MX, /dev/null drops the mail",
            )

        action("list", "the routes, as Network > SMTP Routes lists them")
        new = action("new", "add a route for a domain, .partial domain or ALL (the default route)")
        new.add_argument("domain")
        hosts(new)
        edit = action("edit", "replace the destination hosts of a route")
        edit.add_argument("domain")
        hosts(edit)
        action("delete", "delete a route").add_argument("domain")
        action("lookup", "the route mail to a domain takes (candidate configuration)").add_argument("domain")

    def do_list(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        for route in SmtpRoute.objects.all():
            self.stdout.write(f"{route.domain}\t{route.hosts_display()}")

    def do_new(self, user, domain, hosts, **options):
        hops = [hop(text) for text in hosts]
        self.stage(
            user,
            f"added SMTP route {domain}",
            lambda: routes.create(domain, hops),
            f"SMTP route {domain} added. Use commit to apply it.",
        )

    def do_edit(self, user, domain, hosts, **options):
        hops = [hop(text) for text in hosts]
        self.stage(
            user,
            f"edited SMTP route {domain}",
            lambda: routes.edit(domain, hops),
            f"SMTP route {domain} changed. Use commit to apply it.",
        )

    def do_delete(self, user, domain, **options):
        self.stage(
            user,
            f"deleted SMTP route {domain}",
            lambda: routes.delete(domain),
            f"SMTP route {domain} deleted. Use commit to apply it.",
        )

    def do_lookup(self, user, domain, **options):
        require(user, Capability.VIEW_CONFIG)
        try:
            route = routes.candidate_route(domain)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        if route is None:
            self.stdout.write(f"{domain}: no SMTP route; delivery by MX")
            return
        hops = ", ".join(routes.ordered_hosts(route.hosts))
        self.stdout.write(f"{domain}: route {route.domain} -> {hops}")
