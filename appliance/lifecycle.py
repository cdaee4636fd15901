"""The appliance is one unit: its services die with ``runappliance``, and a start after a crash
finds what the dead run left.

Each service ``runappliance`` starts (gunicorn's master, the mail gateway) asks the kernel for a
parent-death signal (``die_with_parent``): when the supervisor dies, a ``kill -9`` included, each
gets SIGTERM and stops as it would at Ctrl-C, and the gateway's inbound processes die with the
gateway. The supervisor records its own and its services' processes in ``DATA_DIR/run/services``;
the next start waits for those still stopping (``left_running``), refuses to start beside a
``runappliance`` that still runs on the same data directory, and names whatever else holds a port
it needs (``holder``).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
from pathlib import Path

import psutil
from django.conf import settings

SUPERVISOR_PID = "APPLIANCE_SUPERVISOR_PID"  # the environment a service learns its parent from
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent(parent: int | None = None, signum: int = signal.SIGTERM) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies; exit at once if the
    parent (``parent``, else the supervisor named in the environment) is gone already."""
    if parent is None:
        named = os.environ.get(SUPERVISOR_PID, "")
        if not named.isdigit():
            return  # started by hand (manage.py rungateway): nothing to die with
        parent = int(named)
    _prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _record_path() -> Path:
    return settings.DATA_DIR / "run" / "services"


def _identity(pid: int) -> list:
    """A process as recorded: its PID and start time (a PID used again is another process)."""
    return [pid, psutil.Process(pid).create_time()]


def record(services: list[int]) -> None:
    """This supervisor and the ``services`` it runs now."""
    path = _record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    alive = [pid for pid in services if psutil.pid_exists(pid)]
    partial = path.with_suffix(".tmp")
    partial.write_text(
        json.dumps({"supervisor": _identity(os.getpid()), "services": [_identity(pid) for pid in alive]})
    )
    os.replace(partial, path)


def forget() -> None:
    _record_path().unlink(missing_ok=True)


def _still_running(identity: list) -> psutil.Process | None:
    pid, started = identity
    try:
        process = psutil.Process(pid)
        return process if process.create_time() == started else None
    except psutil.NoSuchProcess:
        return None


def left_running(wait: float) -> str:
    """What a previous run on this data directory left: waits up to ``wait`` seconds for its services
    to stop (their parent-death signal told them to), then kills what remains. '' when nothing is
    left, else why this start must not go on (that ``runappliance`` still runs)."""
    try:
        recorded = json.loads(_record_path().read_text())
    except (FileNotFoundError, ValueError):
        return ""
    supervisor = _still_running(recorded["supervisor"])
    if supervisor is not None and supervisor.pid != os.getpid():
        return f"runappliance already runs on this data directory (PID {supervisor.pid})"
    services = [process for identity in recorded["services"] if (process := _still_running(identity))]
    _, alive = psutil.wait_procs(services, timeout=wait)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=wait)
    forget()
    return ""


def holder(address: str, port: int) -> str:
    """Who listens on ``address`` ``port``, for an error message: "PID 123 (postfix master)", or ''."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            if connection.laddr.ip in (address, "0.0.0.0", "::") and connection.pid:
                try:
                    command = " ".join(psutil.Process(connection.pid).cmdline()) or "?"
                except psutil.Error:
                    command = "?"
                return f"PID {connection.pid}: {command[:120]}"
    return ""
