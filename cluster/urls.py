from django.urls import path

from cluster import views

app_name = "cluster"

urlpatterns = [
    path("cluster/", views.machines, name="machines"),
    path("cluster/mode/", views.change_mode, name="change_mode"),
    path("cluster/mode/override/", views.override_settings, name="override_settings"),
    path("cluster/mode/remove/", views.remove_settings, name="remove_settings"),
]
