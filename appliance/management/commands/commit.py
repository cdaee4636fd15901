from appliance import workflow
from appliance.management.base import ApplianceCommand


class Command(ApplianceCommand):
    help = "Commit the uncommitted changes, as the ESA's commit."

    def add_arguments(self, parser):
        parser.add_argument("--comment", default="", help="describes the changes in the rollback list")
        parser.add_argument(
            "--confirm-within",
            type=int,
            metavar="MINUTES",
            help="roll back by itself unless confirmed (a later plain commit confirms)",
        )

    def run(self, user, comment, confirm_within, **options):
        version = workflow.commit(user, comment, source="CLI", confirm_within=confirm_within)
        if version is None:
            confirmed = None if confirm_within else workflow.confirm(user, source="CLI")
            self.stdout.write(
                f"Version {confirmed.number} confirmed." if confirmed else "No changes to commit."
            )
            return
        for warning in workflow.commit_warnings(version):
            self.warn(warning)
        self.stdout.write(f"Changes committed: version {version.number}")
        if confirm_within:
            minutes = f"{confirm_within} minute{'s' if confirm_within != 1 else ''}"
            self.warn(f"version {version.number} rolls back in {minutes} unless confirmed (commit again)")
