"""websecurityconfig: URL Filtering and its link to Web Security Services; ``test`` is Test Connection."""

from __future__ import annotations

from appliance.config import candidate_levels
from appliance.management.base import Refused
from appliance.roles import Capability, require
from destinations import store, websecurity
from destinations.management.console import TestingCommand, add_certificate_options
from destinations.models import UrlFiltering


class Command(TestingCommand):
    help = "URL Filtering: on/off, the Web Security Services endpoint and client certificate (staged), Test Connection."

    def add_arguments(self, parser):
        action = self.subcommands(parser)
        setup = action("setup", "change the settings; options not given stay as they are")
        switch = setup.add_mutually_exclusive_group()
        switch.add_argument(
            "--enable", dest="enabled", action="store_const", const=True, help="Enable URL Filtering"
        )
        switch.add_argument(
            "--disable", dest="enabled", action="store_const", const=False, help="Disable URL Filtering"
        )
        setup.add_argument("--endpoint", metavar="HOST:PORT", help="the Web Security Services endpoint")
        add_certificate_options(setup, "for Web Security Services authentication (client certificate)")
        action("print", "show the settings (candidate)")
        test = action("test", "Test Connection: the mutual-TLS handshake with the endpoint")
        test.add_argument("--endpoint", metavar="HOST:PORT", help="another endpoint than the configured one")
        add_certificate_options(test, "to present instead of the configured one")

    def do_setup(self, user, enabled=None, endpoint=None, certificate=None, **options):
        if enabled is None and endpoint is None and certificate is None:
            raise Refused(
                "nothing to change: give --enable or --disable, --endpoint HOST:PORT, "
                "--certificate NAME or --no-certificate"
            )
        current = UrlFiltering.load()
        values = (
            current.enabled if enabled is None else enabled,
            current.endpoint if endpoint is None else endpoint,
            current.client_certificate_name if certificate is None else certificate,
        )
        self.stage(
            user,
            "edited the URL Filtering settings",
            lambda: store.set_url_filtering(self.mode, *values),
            "URL Filtering settings staged. Use commit to apply them.",
        )

    def do_print(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        current = UrlFiltering.load()
        self.stdout.write(
            f"URL Filtering: {'Enabled' if current.enabled else 'Disabled'}\n"
            f"Web Security Services endpoint: {current.endpoint or 'None'}\n"
            f"Client certificate: {current.client_certificate_name or 'None'}"
        )

    def do_test(self, user, endpoint=None, certificate=None, **options):
        config = candidate_levels.seen_candidate(self.mode)
        configured = websecurity.settings(config)
        endpoint = configured["endpoint"] if endpoint is None else endpoint
        certificate = configured["client_certificate_name"] if certificate is None else certificate
        self.print_report(user, lambda: websecurity.test_connection(endpoint, certificate, config))
