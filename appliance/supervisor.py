"""The supervisor behind ``runappliance``: starts the services and follows each commit.

It runs the HTTPS console (gunicorn, in its own process group so that Ctrl-C
reaches it only through us), the mail gateway (``rungateway``: the listeners,
which follows each commit by itself and is started again if it dies) and the
HTTP redirects, watches the running version, starts the console anew when a
commit changes where it listens, and rolls back a commit that was not confirmed
in time. Certificates change inside gunicorn without a restart. On a machine of a
cluster it also announces the versions other machines commit and reports the version it
runs (``Membership``, which the cluster app registers); a database that cannot be reached
stops none of it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.db import close_old_connections

from appliance import https, lifecycle, workflow
from appliance.redirects import RedirectServers

GUNICORN_CONF = Path(__file__).with_name("gunicorn_conf.py")
STOP_SECONDS = 30  # how long a service may take to stop before it is killed


class CommitWaiter(Protocol):
    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a commit is made meanwhile."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Membership:
    """How this process takes part in a cluster, when it is a machine of one (``settings.MACHINE_NAME``)."""

    require_joined: Callable[[str], None]  # ChangeRefused, saying why, unless the machine has joined
    check_in: Callable[[str, int | None], None]  # the machine runs this version
    check_in_seconds: float  # how often it says so
    stopped: Callable[[str], None]  # the machine stopped cleanly
    commit_waiter: Callable[[], CommitWaiter]  # one that wakes at a commit any machine makes


membership: Membership | None = None


def register_membership(registered: Membership) -> None:
    """Called by the cluster app's ``AppConfig.ready()``."""
    global membership
    membership = registered


class ServiceFailed(Exception):
    pass


def _bind_problem(endpoint: https.Endpoint) -> str:
    """Why the console could not listen on ``endpoint`` ('' if it can)."""
    family = socket.AF_INET6 if ":" in endpoint.address else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((endpoint.address, endpoint.port))
        except OSError as error:
            holder = lifecycle.holder(endpoint.address, endpoint.port)
            return (
                f"{endpoint.address} port {endpoint.port} ({error.strerror}{f'; {holder}' if holder else ''})"
            )
    return ""


def _in_use(endpoints) -> str:
    """The endpoints the console cannot listen on, and why, for an error message."""
    return ", ".join(problem for e in endpoints if (problem := _bind_problem(e)))


def _accepting(endpoint: https.Endpoint) -> bool:
    try:
        with socket.create_connection((endpoint.address, endpoint.port), timeout=0.5):
            return True
    except OSError:
        return False


class Supervisor:
    def __init__(self, write, error):
        self.write, self.error = write, error
        self.stopping = False
        self.console: subprocess.Popen | None = None
        self.gateway: subprocess.Popen | None = None
        self.redirects = RedirectServers()
        self.commits = membership.commit_waiter()
        self.number: int | None = None  # the version the services run
        self.reported = 0.0  # when this machine last checked in (a machine of a cluster)
        self.database_down = False

    def _stop(self, signum, frame):
        self.stopping = True

    def _wait_until_listening(self, endpoints, timeout=30.0) -> bool:
        """True once every endpoint accepts connections; False if we were told to stop meanwhile."""
        deadline = time.monotonic() + timeout
        while not all(_accepting(e) for e in endpoints):
            if self.stopping:
                return False
            if self.console.poll() is not None:
                raise ServiceFailed(f"the HTTPS console exited with status {self.console.returncode}")
            if time.monotonic() > deadline:
                raise ServiceFailed("the HTTPS console did not start listening in time")
            time.sleep(0.1)
        return True

    def _announce(self, number, endpoints) -> None:
        places = ", ".join([*(f"{e.url} ({e.interface})" for e in endpoints), *self.redirects.urls()])
        self.write(f"Appliance ready: {places} [configuration version {number}]")

    def _redirect(self, number) -> None:
        for problem in self.redirects.apply(workflow.machine_config(number)):
            self.error(f"Error: {problem}")

    def _roll_back_unconfirmed(self) -> None:
        """A commit not confirmed in time comes back out, also when its deadline passed while we were down."""
        rolled_back = workflow.roll_back_unconfirmed()
        if rolled_back:
            self.error(f"Warning: {rolled_back}")

    @staticmethod
    def _database(step, *arguments):
        """``step(*arguments)``, or None if the database cannot be reached (``_check_database`` says so)."""
        try:
            return step(*arguments)
        except workflow.DATABASE_UNREACHABLE:
            return None

    def _check_database(self) -> None:
        """Each poll's database work: the rollback of an unconfirmed commit and, on a machine of a
        cluster, the versions other machines commit. Says once that the database went, and once that it
        returned; meanwhile the services keep running the version they run."""
        try:
            self._roll_back_unconfirmed()
            if settings.MACHINE_NAME:
                self._follow_cluster()
        except workflow.DATABASE_UNREACHABLE as error:
            if not self.database_down:
                self.error(
                    f"Warning: the database cannot be reached ({str(error).strip().splitlines()[0]}); "
                    f"the services keep running configuration version {self.number}"
                )
                self.database_down = True
            return
        if self.database_down:
            self.write("The database can be reached again")
            self.database_down = False

    def _follow_cluster(self) -> None:
        """A machine of a cluster: announce a version committed on another machine; report in."""
        latest = workflow.running_number()
        if latest is not None and (
            latest != workflow.announced_in_file() or not workflow.kept_copy(latest).exists()
        ):
            workflow.announce(latest)
        if time.monotonic() - self.reported >= membership.check_in_seconds:
            membership.check_in(settings.MACHINE_NAME, self.number)
            self.reported = time.monotonic()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        problem = lifecycle.left_running(wait=STOP_SECONDS)
        if problem:
            self.error(f"Error: {problem}")
            return 1
        self._roll_back_unconfirmed()
        if settings.MACHINE_NAME:
            self._follow_cluster()  # the versions committed while this machine was down
        number = self.number = workflow.announced_version()
        endpoints = https.endpoints(workflow.machine_config(number))
        busy = _in_use(endpoints)
        if busy:
            self.error(f"Error: the console cannot listen on {busy}")
            return 1
        https.forget_certificate_files()
        self._start_console()
        self.gateway = self._start("rungateway")
        self._record()
        try:
            if self._wait_until_listening(endpoints):
                self._redirect(number)
                self._announce(number, endpoints)
            while not self.stopping:
                self.commits.wait(0.5)
                close_old_connections()  # one a restarted database server broke is replaced
                if self.console.poll() is not None:
                    raise ServiceFailed(f"the HTTPS console exited with status {self.console.returncode}")
                if self.gateway.poll() is not None:
                    self.error(
                        f"Warning: the mail gateway exited with status {self.gateway.returncode}; starting it again"
                    )
                    self.gateway = self._start("rungateway")
                    self._record()
                self._check_database()
                latest = workflow.announced_in_file()
                if latest is None:
                    latest = self._database(workflow.running_number)
                if latest is not None and latest != number:
                    followed = self._database(self._follow, latest, endpoints)
                    if followed:
                        number, endpoints = followed
                        self.number = number
                        self.reported = 0.0  # report the new version at once
        except ServiceFailed as failure:
            self.error(f"Error: {failure}")
            return 1
        finally:
            self._shutdown()
        return 0

    def _start_console(self) -> None:
        self.console = self._start("-m", "gunicorn", "--config", str(GUNICORN_CONF))
        if self.gateway is not None:
            self._record()

    def _record(self) -> None:
        lifecycle.record([process.pid for process in (self.console, self.gateway) if process])

    @staticmethod
    def _start(*arguments: str) -> subprocess.Popen:
        """A service process of our own: ``manage.py COMMAND`` or ``-m MODULE …``."""
        command = (
            [sys.executable, *arguments]
            if arguments[0] == "-m"
            else [sys.executable, "manage.py", *arguments]
        )
        return subprocess.Popen(
            command,
            # Each dies with us, also by kill -9 (``lifecycle.die_with_parent``).
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "appliance.settings",
                lifecycle.SUPERVISOR_PID: str(os.getpid()),
            },
            cwd=settings.BASE_DIR,
            start_new_session=True,
        )

    def _follow(self, number, endpoints):
        """A commit happened: rebind the console if its addresses changed."""
        new_endpoints = https.endpoints(workflow.machine_config(number))
        old_binds = {e.bind for e in endpoints}
        busy = _in_use(e for e in new_endpoints if e.bind not in old_binds)
        if busy:
            self.error(
                f"Error: configuration version {number} asks the console to listen on {busy}; "
                "the console stays where it was"
            )
            return number, endpoints
        if [e.bind for e in new_endpoints] != [e.bind for e in endpoints]:
            # gunicorn's SIGHUP rebinds every address while the old workers still hold theirs,
            # so an address that stays would be "in use": start the console anew instead.
            # Sessions live in the database, so signed-in administrators stay signed in.
            self._stop_console()
            self._start_console()
            if not self._wait_until_listening(new_endpoints):
                return number, new_endpoints
        self._redirect(number)
        self._announce(number, new_endpoints)
        return number, new_endpoints

    def _shutdown(self) -> None:
        if settings.MACHINE_NAME:
            self._database(membership.stopped, settings.MACHINE_NAME)
        self.commits.close()
        self.redirects.close()
        _stop(self.gateway)
        self._stop_console()
        lifecycle.forget()

    def _stop_console(self) -> None:
        _stop(self.console)


def _stop(process: subprocess.Popen | None) -> None:
    if process and process.poll() is None:
        process.terminate()  # gunicorn and the gateway: graceful stop
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
