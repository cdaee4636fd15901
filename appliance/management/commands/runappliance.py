from django.core.management import call_command

from appliance import bootstrap
from appliance.management.base import ApplianceCommand, Refused
from appliance.supervisor import Supervisor


class Command(ApplianceCommand):
    help = "Apply migrations, set up the appliance on first start, and run its services in the foreground."
    acts_as_user = False

    def handle(self, *args, **options):
        try:
            call_command("migrate", interactive=False, verbosity=0)
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
        status = Supervisor(
            write=lambda line: self.stdout.write(line) or self.stdout.flush(),
            error=lambda line: self.stderr.write(line) or self.stderr.flush(),
        ).run()
        if status:
            raise SystemExit(status)
