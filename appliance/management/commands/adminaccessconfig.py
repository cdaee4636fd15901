from appliance import workflow
from appliance.management.base import ApplianceCommand, Refused
from appliance.models import SystemSettings
from appliance.roles import Capability, require
from appliance.sections import WEB_UI_TIMEOUT


class Command(ApplianceCommand):
    help = "Stage the Web UI Inactivity Timeout; without --timeout, print the current (candidate) one."

    def add_arguments(self, parser):
        parser.add_argument(
            "--timeout",
            type=int,
            help=f"minutes ({WEB_UI_TIMEOUT.minimum}-{WEB_UI_TIMEOUT.maximum}) without a request before a "
            "console session is logged out",
        )

    def run(self, user, timeout, **options):
        if timeout is None:
            require(user, Capability.VIEW_CONFIG)
            minutes = SystemSettings.load().web_ui_timeout_minutes
            self.stdout.write(f"Web UI Inactivity Timeout: {minutes} minutes")
            return
        if not WEB_UI_TIMEOUT.minimum <= timeout <= WEB_UI_TIMEOUT.maximum:
            raise Refused(
                f"The Web UI Inactivity Timeout is {WEB_UI_TIMEOUT.minimum} to {WEB_UI_TIMEOUT.maximum} minutes"
            )

        def apply():
            system = SystemSettings.load()
            system.web_ui_timeout_minutes = timeout
            system.save(update_fields=["web_ui_timeout_minutes"])

        result = workflow.submit(
            user,
            f"set the Web UI Inactivity Timeout to {timeout} minutes",
            apply,
            source="CLI",
            mode=self.mode,
        )
        self.report(result, f"Web UI Inactivity Timeout of {timeout} minutes staged. Use commit to apply it.")
