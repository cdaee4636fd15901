"""ldapconfig: LDAP from the console; ``setup`` is LDAP Global Settings, ``test`` is Test Server."""

from __future__ import annotations

import argparse

from appliance.config import candidate_levels
from appliance.management.base import Refused, read_passphrase_file
from appliance.roles import Capability, require
from destinations import ldap, store
from destinations.management.console import TestingCommand, add_certificate_options, yes_no
from destinations.models import LDAP_PORT, LDAPS_PORT, LdapServer, LdapSettings


def _profile_options(parser, new: bool) -> None:
    parser.add_argument("--host", required=new, help="host name or IP address of the LDAP server")
    parser.add_argument("--port", type=int, help=f"default {LDAPS_PORT} with SSL, {LDAP_PORT} without")
    parser.add_argument(
        "--ssl",
        dest="use_ssl",
        action=argparse.BooleanOptionalAction,
        help="Use SSL to connect (LDAPS; default on)",
    )
    parser.add_argument("--bind-dn", help="the DN to bind as; empty: anonymous bind")
    parser.add_argument(
        "--bind-password-file", metavar="PATH", help="a file whose first line is the bind password"
    )
    parser.add_argument("--base-dn", help="where searches start, e.g. dc=example,dc=com")


class Command(TestingCommand):
    help = (
        "LDAP global settings (the client certificate) and LDAP server profiles, with Test Server (staged)."
    )

    def add_arguments(self, parser):
        action = self.subcommands(parser)
        setup = action("setup", "LDAP Global Settings: the client certificate for every LDAPS connection")
        add_certificate_options(setup, "presented as the client certificate on LDAPS connections")
        action("list", "the server profiles, one a line")
        action("print", "the global settings and every server profile (candidate)")
        new = action("new", "add a server profile")
        new.add_argument("name")
        _profile_options(new, new=True)
        edit = action("edit", "change a server profile; options not given stay as they are")
        edit.add_argument("name")
        edit.add_argument("--rename", metavar="NEW_NAME", help="a new name for the profile")
        _profile_options(edit, new=False)
        action("delete", "delete a server profile").add_argument("name")
        action("test", "Test Server: connect (LDAPS with the client certificate), then bind").add_argument(
            "name"
        )

    # --- reading ---------------------------------------------------------

    @property
    def servers_level(self) -> str:
        """The level whose LDAP server profiles --mode sees."""
        return self.mode.seen("ldap_servers")

    def do_list(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        for server in LdapServer.objects.at(self.servers_level):
            self.stdout.write(
                f"{server.name}\t{server.host}\t{server.port}\t{'SSL' if server.use_ssl else 'no SSL'}\t"
                f"{server.bind_dn or '(anonymous)'}\t{server.base_dn or '-'}"
            )

    def do_print(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        settings = LdapSettings.load(self.mode.seen("ldap"))
        lines = [f"LDAP Global Settings: Certificate: {settings.certificate_name or 'None'}"]
        for server in LdapServer.objects.at(self.servers_level):
            lines += [
                f"LDAP Server Profile: {server.name}",
                f"  Host Name: {server.host}",
                f"  Port: {server.port}",
                f"  Use SSL: {yes_no(server.use_ssl)}",
                f"  Bind DN: {server.bind_dn or '(anonymous bind)'}",
                f"  Bind password: {'(set)' if server.bind_password_sealed else '(none)'}",
                f"  Base DN: {server.base_dn or '-'}",
            ]
        self.stdout.write("\n".join(lines))

    def do_test(self, user, name, **options):
        config = candidate_levels.seen_candidate(self.mode)
        self.print_report(user, lambda: ldap.test_server(ldap.profile(name, config), config))

    # --- changing --------------------------------------------------------

    def do_setup(self, user, certificate=None, **options):
        if certificate is None:
            raise Refused("nothing to change: give --certificate NAME or --no-certificate")
        self.stage(
            user,
            "edited the LDAP global settings",
            lambda: store.set_ldap_certificate(self.mode, certificate),
            "LDAP global settings staged. Use commit to apply them.",
        )

    def do_new(self, user, name, host, port, use_ssl, bind_dn, bind_password_file, base_dn, **options):
        use_ssl = True if use_ssl is None else use_ssl
        fields = store.ServerFields(
            name=name,
            host=host,
            port=port if port is not None else (LDAPS_PORT if use_ssl else LDAP_PORT),
            use_ssl=use_ssl,
            bind_dn=bind_dn or "",
            bind_password=read_passphrase_file(bind_password_file),
            base_dn=base_dn or "",
        )
        self.stage(
            user,
            f"added LDAP server profile {name}",
            lambda: store.save_ldap_server(self.servers_level, fields),
            f"LDAP server profile {name} staged. Use commit to apply it.",
        )

    def do_edit(
        self, user, name, rename, host, port, use_ssl, bind_dn, bind_password_file, base_dn, **options
    ):
        password = read_passphrase_file(bind_password_file)

        def apply():
            server = store.get_ldap_server(self.servers_level, name)
            fields = store.ServerFields(
                name=rename or server.name,
                host=server.host if host is None else host,
                port=server.port if port is None else port,
                use_ssl=server.use_ssl if use_ssl is None else use_ssl,
                bind_dn=server.bind_dn if bind_dn is None else bind_dn,
                bind_password=password,
                base_dn=server.base_dn if base_dn is None else base_dn,
            )
            return store.save_ldap_server(self.servers_level, fields, original=name)

        self.stage(
            user,
            f"edited LDAP server profile {name}",
            apply,
            f"LDAP server profile {rename or name} staged. Use commit to apply it.",
        )

    def do_delete(self, user, name, **options):
        self.stage(
            user,
            f"deleted LDAP server profile {name}",
            lambda: store.delete_ldap_server(self.servers_level, name),
            f"LDAP server profile {name} deleted.",
        )
