from django.urls import path

from certificates import views

app_name = "certificates"

urlpatterns = [
    path("", views.certificate_list, name="list"),
    path("add/", views.add_certificate, name="add"),
    path("authorities/", views.authorities, name="authorities"),
    path("authorities/system/", views.system_authorities, name="system_authorities"),
    path("authorities/export/<str:which>/", views.export_authorities, name="export_authorities"),
    # Under a word of their own, so no certificate name ("add") is taken for a page.
    path("certificate/<str:name>/", views.certificate_detail, name="detail"),
    path("certificate/<str:name>/csr/", views.download_csr, name="csr"),
    path("certificate/<str:name>/mx-check/", views.certificate_mx_check, name="mx_check"),
    path("certificate/<str:name>/export/", views.export_certificate, name="export"),
]
