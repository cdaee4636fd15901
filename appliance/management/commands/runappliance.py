import os

from django.conf import settings
from django.core.management import call_command

from appliance import bootstrap, supervisor
from appliance.management.base import ApplianceCommand, Refused


class Command(ApplianceCommand):
    help = "Apply migrations, set up the appliance on first start, and run its services in the foreground."
    acts_as_user = False

    def add_arguments(self, parser):
        parser.add_argument(
            "--machine",
            default=settings.MACHINE_NAME,
            help="run as this machine of the cluster (clusterconfig join) (default: APPLIANCE_MACHINE)",
        )

    def handle(self, *args, machine, **options):
        try:
            call_command("migrate", interactive=False, verbosity=0)
            if machine:
                self.become(machine)
            password = bootstrap.first_start()
        except bootstrap.BootstrapError as error:
            raise Refused(str(error)) from None
        except KeyboardInterrupt:  # Ctrl-C before the services started: nothing runs yet
            self.stdout.write("Stopped.")
            return
        if password:
            self.stdout.write(f"First start: the password of user admin is {password} (shown once)")
        elif password == "":
            self.stdout.write("First start: user admin has the password from APPLIANCE_ADMIN_PASSWORD")
        status = supervisor.Supervisor(
            write=self.service_line,
            error=self.service_line,
        ).run()
        if status:
            raise SystemExit(status)

    @staticmethod
    def become(machine: str) -> None:
        """This process and the services it starts are ``machine``: its interfaces, its reports."""
        supervisor.membership.require_joined(machine)
        settings.MACHINE_NAME = os.environ["APPLIANCE_MACHINE"] = machine
