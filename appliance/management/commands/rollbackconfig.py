from django.utils import timezone

from appliance import workflow
from appliance.management.base import ApplianceCommand
from appliance.models import ConfigVersion
from appliance.roles import Capability, require


class Command(ApplianceCommand):
    help = "List the committed versions kept, or stage one of them for rollback (commit applies it)."

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument(
            "--list", action="store_true", help="number, time, user and comment of each version"
        )
        action.add_argument("--to", type=int, metavar="N", help="stage version N as the candidate")

    def run(self, user, list, to, force=False, **options):
        if list:
            require(user, Capability.VIEW_CONFIG)
            running = workflow.running_number()
            for version in ConfigVersion.objects.defer("xml"):
                marker = " (running)" if version.number == running else ""
                self.stdout.write(
                    f"{version.number}\t{timezone.localtime(version.created):%Y-%m-%d %H:%M:%S}\t{version.user_name}\t"
                    f"{version.comment}{marker}"
                )
            return
        result = workflow.rollback_to(user, to, source="CLI", confirmed=force)
        self.report(result, f"Version {to} staged. Use commit to apply it.")
