from django.urls import path

from tracking import views

app_name = "tracking"

urlpatterns = [
    path("tls-connections/", views.tls_connections, name="tls_connections"),
    path("message-tracking/", views.messages, name="messages"),
    path("message-tracking/<int:mid>/", views.message_detail, name="message"),
]
