from django.apps import AppConfig


class ListenersConfig(AppConfig):
    """Listeners, HAT, mail flow policies and the inbound SMTP server (issues to come)."""

    name = "listeners"
