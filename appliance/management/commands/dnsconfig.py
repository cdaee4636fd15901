from appliance import dns
from appliance.config.sections import registry
from appliance.management.base import Refused, SubcommandCommand
from appliance.roles import Capability, require


class Command(SubcommandCommand):
    help = "Network > DNS: the resolvers the gateway asks (staged), and test lookups."

    def add_arguments(self, parser):
        action = self.subcommands(parser)
        action("print", "the servers in priority order and the PTR timeout")
        setting = action("set", "replace the server list and/or the PTR timeout")
        setting.add_argument(
            "--server",
            action="append",
            metavar="ADDRESS[:PORT][/PRIORITY]",
            help="repeat for several; --server none: the machine's resolvers",
        )
        setting.add_argument("--ptr-timeout", type=int, metavar="SECONDS")
        lookup = action("lookup", "ask the configured servers (candidate configuration)")
        lookup.add_argument("name")
        lookup.add_argument("record_type", nargs="?", default="MX", choices=["MX", "A", "AAAA", "PTR", "TXT"])

    def do_print(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        [current] = registry.get("dns").read()
        for entry in current["dns_ip"] or [{"address": "(the machine's resolvers)", "priority": "-"}]:
            self.stdout.write(f"{entry['address']}\tpriority {entry['priority']}")
        self.stdout.write(f"PTR timeout: {current['dns_ptr_timeout']} s")

    def do_set(self, user, server, ptr_timeout, **options):
        if server is None and ptr_timeout is None:
            raise Refused("nothing to change: give --server or --ptr-timeout")
        [current] = registry.get("dns").read()
        if server is not None:
            current["dns_ip"] = [] if server == ["none"] else [self._entry(value) for value in server]
        if ptr_timeout is not None:
            if not 1 <= ptr_timeout <= 60:
                raise Refused("the PTR timeout must be between 1 and 60 seconds")
            current["dns_ptr_timeout"] = ptr_timeout
        if len({e["address"] for e in current["dns_ip"]}) != len(current["dns_ip"]):
            raise Refused("a server is listed twice")
        self.stage(
            user,
            "edited the DNS settings",
            lambda: registry.get("dns").write([current]),
            "DNS settings staged. Use commit to apply them.",
        )

    @staticmethod
    def _entry(value: str) -> dict:
        address, _, priority = value.partition("/")
        try:
            dns.validate_server(address)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        if priority and (not priority.isdigit() or int(priority) > 99):
            raise Refused(f"{value!r}: the priority must be a number from 0 to 99")
        return {"address": address, "priority": int(priority or 0)}

    def do_lookup(self, user, name, record_type, **options):
        require(user, Capability.VIEW_CONFIG)
        try:
            answers = dns.lookup(registry.candidate(), name, record_type)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        self.stdout.write("\n".join(answers))
