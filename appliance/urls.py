from django.urls import include, path

from appliance.views import account, alerts, configfile, help, monitor, network, system, users, workflow

urlpatterns = [
    path("login/", account.login_view, name="login"),
    path("logout/", account.logout_view, name="logout"),
    path("password/", account.change_password, name="change_password"),
    path("", monitor.overview, name="overview"),
    path("commit/", workflow.uncommitted_changes, name="uncommitted_changes"),
    path("commit/abandon/", workflow.abandon_changes, name="abandon_changes"),
    path("commit/confirm/", workflow.confirm_commit, name="confirm_commit"),
    path("network/interfaces/", network.interfaces, name="interfaces"),
    path("network/dns/", network.dns_settings, name="dns"),
    path("network/interfaces/add/", network.interface_edit, name="interface_add"),
    path("network/interfaces/edit/<str:name>/", network.interface_edit, name="interface_edit"),
    path("network/interfaces/delete/<str:name>/", network.interface_delete, name="interface_delete"),
    path("admin/system/", system.system_settings, name="system_settings"),
    path("admin/network-access/", system.network_access, name="network_access"),
    path("admin/ssl/", system.ssl_configuration, name="ssl_configuration"),
    path("admin/config/", configfile.config_file, name="config_file"),
    path("admin/config/load/", configfile.load_config, name="load_config"),
    path("admin/rollback/", workflow.rollback, name="rollback"),
    path("admin/rollback/<int:number>/", workflow.rollback_diff, name="rollback_diff"),
    path("admin/audit/", system.audit_log, name="audit_log"),
    # System Administration > Alerts stands where it always stood, below /services/.
    path("services/alerts/", alerts.alert_list, name="alert_recipients"),
    path("services/alerts/add/", alerts.add_recipient, name="alert_recipient_add"),
    path("services/alerts/edit/<str:address>/", alerts.edit_recipient, name="alert_recipient_edit"),
    path("services/alerts/delete/<str:address>/", alerts.delete_recipient, name="alert_recipient_delete"),
    path("admin/users/", users.user_list, name="users"),
    path("admin/users/add/", users.user_edit, name="user_add"),
    path("admin/users/edit/<str:username>/", users.user_edit, name="user_edit"),
    path("admin/users/delete/<str:username>/", users.user_delete, name="user_delete"),
    path("help/", help.help_page, name="help_index"),
    path("help/<str:doc>/", help.help_page, name="help"),
    path("network/certificates/", include("certificates.urls")),
    path("network/listeners/", include("listeners.urls")),
    path("services/", include("destinations.urls")),
    path("monitor/", include("tracking.urls")),
    path("admin/", include("cluster.urls")),
    path("", include("gateway.urls")),
]

handler403 = "appliance.views.errors.permission_denied"
handler500 = "appliance.views.errors.server_error"
