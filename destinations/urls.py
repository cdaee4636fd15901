from django.urls import include, path

from destinations import route_views, views

app_name = "destinations"

urlpatterns = [
    path("destination-controls/", views.destination_controls, name="destination_controls"),
    path(
        "destination-controls/global/",
        views.destination_controls_settings,
        name="destination_controls_settings",
    ),
    path("destination-controls/add/", views.destination_entry, name="destination_add"),
    path("destination-controls/delete/", views.destination_delete, name="destination_delete"),
    path("destination-controls/lookup/", views.destination_lookup, name="destination_lookup"),
    path("destination-controls/import/", views.destination_import, name="destination_import"),
    path("destination-controls/export/", views.destination_export, name="destination_export"),
    path("destination-controls/entries/<str:name>/", views.destination_entry, name="destination_entry"),
    path("mail-delivery/", views.mail_delivery, name="mail_delivery"),
    path("mail-delivery/edit/", views.mail_delivery_settings, name="mail_delivery_settings"),
    path("ldap/", views.ldap_overview, name="ldap"),
    path("ldap/settings/", views.ldap_settings, name="ldap_settings"),
    path("ldap/add/", views.ldap_server, name="ldap_add"),
    path("ldap/servers/<str:name>/", views.ldap_server, name="ldap_server"),
    path("ldap/servers/<str:name>/test/", views.ldap_test, name="ldap_test"),
    path("url-filtering/", views.url_filtering, name="url_filtering"),
    path("smtp-routes/", include(route_views.urlpatterns)),
]
