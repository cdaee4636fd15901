from appliance import workflow
from appliance.management.base import ApplianceCommand


class Command(ApplianceCommand):
    help = "Commit the uncommitted changes, as the ESA's commit."

    def add_arguments(self, parser):
        parser.add_argument("--comment", default="", help="describes the changes in the rollback list")

    def run(self, user, comment, **options):
        version = workflow.commit(user, comment, source="CLI")
        if version is None:
            self.stdout.write("No changes to commit.")
            return
        for warning in workflow.commit_warnings(version):
            self.warn(warning)
        self.stdout.write(f"Changes committed: version {version.number}")
