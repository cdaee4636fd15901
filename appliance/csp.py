"""The Content-Security-Policy of every answer: scripts, styles and images from the console itself only.

No inline script, handler or style attribute runs, so markup injected into a page cannot act; the
templates keep their behaviour in static/js/console.js and their looks in static/css/console.css.
"""

from __future__ import annotations

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
