"""gunicorn settings for the console, computed from the running configuration.

The supervisor (``runappliance``) starts gunicorn with this file, and starts it
anew when a commit changes where the console listens. Certificates change
without a restart (``ssl_context``).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connections  # noqa: E402

from appliance import https, lifecycle, workflow  # noqa: E402
from appliance.config.sections import registry  # noqa: E402

lifecycle.die_with_parent()  # the master stops when runappliance dies, as at Ctrl-C
_config = workflow.machine_config()
_endpoints = https.endpoints(_config)
connections.close_all()  # never share the master's database connection with forked workers

bind = [endpoint.bind for endpoint in _endpoints]
# gunicorn serves TLS only when these are set; the context below replaces what it would build.
certfile, keyfile = https.certificate_files(
    registry.item_named(_config, "certificates", _endpoints[0].certificate)
)
wsgi_app = "appliance.wsgi:application"
# Threads keep TLS connections alive: the sync worker closes each one after a request.
worker_class = "gthread"
workers = settings.WEB_WORKERS
threads = settings.WEB_THREADS
keepalive = 30
graceful_timeout = 5
accesslog = "-"
errorlog = "-"
loglevel = "info"
logconfig_dict = settings.GUNICORN_LOGGING  # the terminal and DATA_DIR/logs/console.log
proc_name = "appliance-console"
secure_scheme_headers = {}  # the console terminates TLS itself; trust no proxy header
forwarded_allow_ips = ""
control_socket_disable = True


def _running():
    number = workflow.announced_version()
    return number, workflow.machine_config(number)


_console_tls = https.ConsoleTLS(_running, workflow.DATABASE_UNREACHABLE)
_console_tls.context()  # loaded in the master: every worker starts with the certificates in hand


def ssl_context(config, default_ssl_context_factory):
    return _console_tls.context()
