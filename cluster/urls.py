from django.urls import path

from cluster import views

app_name = "cluster"

urlpatterns = [
    path("cluster/", views.machines, name="machines"),
]
