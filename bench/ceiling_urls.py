"""The appliance's URLs plus ``/bench/ceiling/``, the framework's ceiling (bench only)."""

from django.http import HttpResponse
from django.urls import include, path


def ceiling(request):
    """The least a console page can cost: routing, the middleware, the session and its user."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench/ceiling/", ceiling, name="bench_ceiling"),
    path("", include("appliance.urls")),
]
