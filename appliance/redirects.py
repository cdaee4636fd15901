"""Plain HTTP on an interface: every request is sent to the same host on the interface's HTTPS port.

The console itself is served encrypted only; the supervisor runs these small
servers for interfaces with an HTTP port and "Redirect HTTP requests to HTTPS".
"""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from appliance.config.sections import Config

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


def _host_of(header: str, address: str) -> str:
    """The host the browser asked for, without its port; the interface address if the header is odd."""
    match = _HOST.fullmatch(header.strip())
    if match:
        return match.group(1)
    return f"[{address}]" if ":" in address else address


class _Redirect(BaseHTTPRequestHandler):
    server_version = "appliance"
    sys_version = ""

    def _send(self):
        host = _host_of(self.headers.get("Host", ""), self.server.server_address[0])
        port = self.server.https_port
        location = f"https://{host}{'' if port == 443 else f':{port}'}{self.path}"
        self.send_response(301)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = _send

    def log_message(self, format, *args):  # the console's access log is gunicorn's
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: str, port: int, https_port: int):
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.https_port = https_port
        super().__init__((address, port), _Redirect)


def wanted(config: Config) -> dict[tuple[str, int], int]:
    """(address, HTTP port) → HTTPS port, for every interface that redirects."""
    return {
        (i["ip"], i["httpd_port"]): i["httpsd_port"]
        for i in config.get("interfaces", [])
        if i["httpd_port"] and i["https_redirect"] and i["httpsd_port"]
    }


class RedirectServers:
    """The running redirect servers, brought in line with each committed version."""

    def __init__(self):
        self.servers: dict[tuple[str, int], _Server] = {}

    def apply(self, config: Config) -> list[str]:
        """Start, stop or retarget servers; returns the problems (a port in use), in words."""
        targets = wanted(config)
        for key in [k for k, server in self.servers.items() if targets.get(k) != server.https_port]:
            self._stop(key)
        problems = []
        for (address, port), https_port in targets.items():
            if (address, port) in self.servers:
                continue
            try:
                server = _Server(address, port, https_port)
            except OSError as error:
                problems.append(f"the HTTP redirect cannot listen on {address} port {port}: {error.strerror}")
                continue
            threading.Thread(
                target=server.serve_forever, name=f"redirect {address}:{port}", daemon=True
            ).start()
            self.servers[address, port] = server
        return problems

    def _stop(self, key) -> None:
        server = self.servers.pop(key)
        server.shutdown()
        server.server_close()

    def close(self) -> None:
        for key in list(self.servers):
            self._stop(key)

    def urls(self) -> list[str]:
        return [f"http://{f'[{a}]' if ':' in a else a}:{p}/ (redirect)" for a, p in self.servers]
