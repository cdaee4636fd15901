from django.apps import AppConfig


class DestinationsConfig(AppConfig):
    """Destination controls, SMTP routes and the delivery engine (issues to come)."""

    name = "destinations"
