from django.apps import AppConfig


class TrackingConfig(AppConfig):
    """What the gateway did with each connection and message, as it did it: the TLS Connections
    report and Message Tracking read these records, never the mail logs."""

    name = "tracking"
    verbose_name = "Tracking"

    def ready(self):
        from appliance import navigation

        # Message data, as Monitor > Queue: not for Guests (roles.MAIL_DATA).
        navigation.register(
            "Monitor",
            "Message Tracking",
            "tracking:messages",
            position=15,
            help="guide#monitor-message-tracking",
        )
        navigation.register(
            "Monitor",
            "TLS Connections",
            "tracking:tls_connections",
            position=25,
            help="guide#monitor-tls-connections",
        )
