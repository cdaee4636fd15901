from django.conf import settings

from appliance import lifecycle
from appliance.management.base import ApplianceCommand, Refused
from gateway import server as gateway


class Command(ApplianceCommand):
    help = "Run the mail gateway: every committed listener, following each commit (runappliance starts it)."
    acts_as_user = False

    def add_arguments(self, parser):
        parser.add_argument(
            "--processes",
            type=int,
            default=settings.GATEWAY_PROCESSES,
            help="processes that accept mail (default: APPLIANCE_GATEWAY_PROCESSES, else one per core)",
        )

    def handle(self, *args, processes, **options):
        if processes < 1:
            raise Refused("--processes must be 1 or more")
        lifecycle.die_with_parent()  # started by runappliance: stop when it dies
        status = gateway.serve(write=self.service_line, processes=processes)
        if status:
            raise SystemExit(status)
