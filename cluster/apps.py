from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "cluster"
    verbose_name = "Centralized Management"

    def ready(self):
        from appliance.navigation import register

        register(
            "System Administration",
            "Cluster Management",
            "cluster:machines",
            position=15,
            help="guide#system-administration-cluster-management",
        )
