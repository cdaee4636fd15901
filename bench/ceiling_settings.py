"""Settings for the console benchmark: the appliance's own, plus one trivial page.

``bench/console_load.py`` starts gunicorn with ``DJANGO_SETTINGS_MODULE=bench.ceiling_settings``
so that the console pages and ``/bench/ceiling/`` (an ``HttpResponse("ok")`` behind the same
middleware: sessions, CSRF, login required) are served by the same processes. Never used by
the appliance itself.
"""

from appliance.settings import *  # noqa: F403

ROOT_URLCONF = "bench.ceiling_urls"
