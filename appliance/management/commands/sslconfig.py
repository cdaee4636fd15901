from appliance import tls
from appliance.management.base import Refused, SubcommandCommand
from appliance.models import SslSettings
from appliance.roles import Capability, require
from appliance.sections import SSL_FIELDS


class Command(SubcommandCommand):
    help = "SSL Configuration: TLS versions and ciphers per service (gui, inbound, outbound); staged."

    def add_arguments(self, parser):
        action = self.subcommands(parser)
        action("print", "the settings of every service")
        setting = action("set", "change one service's settings (those given)")
        setting.add_argument("service", choices=tls.Service.values)
        setting.add_argument("--min", dest="lowest", choices=tls.TLSVersion.values, help="lowest TLS version")
        setting.add_argument(
            "--max", dest="highest", choices=tls.TLSVersion.values, help="highest TLS version"
        )
        setting.add_argument("--ciphers", help="OpenSSL cipher string (TLS 1.2 and below)")

    def do_print(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        current = SslSettings.load(self.mode.seen("ssl_config"))
        for service in tls.Service:
            self.stdout.write(
                f"{service.label}: {getattr(current, f'{service}_tls_min')} to {getattr(current, f'{service}_tls_max')}"
                f"\n  ciphers: {getattr(current, f'{service}_ciphers')}"
            )

    def do_set(self, user, service, lowest, highest, ciphers, **options):
        if lowest is highest is ciphers is None:
            raise Refused("nothing to change: give --min, --max or --ciphers")
        current = SslSettings.load(self.mode.seen("ssl_config"))
        values = {field: getattr(current, field) for field in SSL_FIELDS}
        for name, value in (("tls_min", lowest), ("tls_max", highest), ("ciphers", ciphers)):
            if value is not None:
                values[f"{service}_{name}"] = value
        try:
            tls.validate_ciphers(values[f"{service}_ciphers"])
        except ValueError as exc:
            raise Refused(f"the cipher string {exc}") from None
        problem = tls.policy_problems(values[f"{service}_tls_min"], values[f"{service}_tls_max"])
        if problem:
            raise Refused(problem)
        self.stage(
            user,
            f"edited the SSL configuration of {tls.Service(service).label}",
            lambda: SslSettings.every_level.filter(pk=current.pk).update(**values),
            f"SSL configuration of {tls.Service(service).label} staged. Use commit to apply it.",
        )
