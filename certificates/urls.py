from django.urls import path

from certificates import views

app_name = "certificates"

urlpatterns = [
    path("", views.certificate_list, name="list"),
]
