from appliance import workflow
from appliance.management.base import ApplianceCommand, Refused
from appliance.models import SystemSettings
from appliance.roles import Capability, require
from appliance.validators import validate_hostname


class Command(ApplianceCommand):
    help = "Stage a new system hostname; without a name, print the current (candidate) one."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="the new fully qualified hostname")

    def run(self, user, name, **options):
        if name is None:
            require(user, Capability.VIEW_STATUS)
            self.stdout.write(SystemSettings.load().hostname)
            return
        try:
            validate_hostname(name)
        except ValueError as exc:
            raise Refused(str(exc)) from None

        def apply():
            system = SystemSettings.load()
            system.hostname = name
            system.save(update_fields=["hostname"])

        result = workflow.submit(user, f"set hostname to {name}", apply, source="CLI", mode=self.mode)
        self.report(result, f"Hostname {name} staged. Use commit to apply it.")
