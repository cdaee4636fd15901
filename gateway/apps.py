from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """The mail runtime: the listeners' SMTP server, the spool, delivery, bounces, the mail log and the
    alerts it sends, with the pages over them (Monitor > Queue, Mail Logs, Alerts; Test TLS)."""

    name = "gateway"
    verbose_name = "Mail gateway"

    def ready(self):
        from appliance import navigation

        # Senders, recipients and log lines: not for Guests (as the views, roles.MAIL_DATA).
        navigation.register("Monitor", "Queue", "queue", position=20, help="guide#monitor-queue")
        navigation.register("Monitor", "Mail Logs", "mail_logs", position=30, help="guide#monitor-mail-logs")
        navigation.register("Monitor", "Alerts", "alerts", position=40, help="guide#monitor-alerts")
        navigation.register(
            "System Administration",
            "Log Subscriptions",
            "log_subscriptions",
            position=55,
            help="guide#system-administration-log-subscriptions",
        )
        navigation.register_help("tls_test", "guide#test-tls")
