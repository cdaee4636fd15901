from django.urls import path

from gateway.views import monitor, tls_test

# Mounted at the root by ``appliance.urls``: the gateway's pages stand in the menus beside the
# configuration they run (Test TLS under Destination Controls), with the names they always had.
urlpatterns = [
    path("monitor/queue/", monitor.queue, name="queue"),
    path("monitor/queue/action/", monitor.queue_action, name="queue_action"),
    path("monitor/mail-logs/", monitor.mail_logs, name="mail_logs"),
    path("monitor/alerts/", monitor.alerts, name="alerts"),
    path("admin/log-subscriptions/", monitor.log_subscriptions, name="log_subscriptions"),
    path("admin/log-subscriptions/<str:filename>/", monitor.log_download, name="log_download"),
    path("services/destination-controls/test-tls/", tls_test.tls_test, name="tls_test"),
]
