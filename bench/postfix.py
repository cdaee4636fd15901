"""A private Postfix instance for the benchmarks: our gateway's yardstick, on the same machine.

``Postfix(role, chain_pem, key_pem)`` writes a ``main.cf`` and ``master.cf`` of its
own in a temporary directory under /tmp (the disk our spool is on: its queue is
there too), listens on a free loopback port and offers STARTTLS
(``smtpd_tls_security_level = may``) with the certificate and key it is given
(the benchmarks give it the appliance's Demo certificate, so both servers sign
with the same RSA key). It is the Debian package's Postfix, as shipped, but for:

- ``discard``: every message it accepts goes to the discard transport (queued,
  fsync'd, then dropped): the inbound benchmark's twin of an SMTP route to /dev/null;
- ``relay``: every message goes to ``relayhost`` with ``smtp_tls_security_level =
  encrypt`` (Required TLS) and TLS connections reused (``smtp_tls_connection_reuse``
  through tlsproxy, which Postfix needs for it), ``concurrency`` connections at most;
  ``hold`` keeps what comes in the hold queue until ``release``;
- ``sink``: as ``discard``, for the delivery benchmark's receiving end.

No local delivery, no aliases, no chroot. Its daemons run as user ``postfix``,
so the instance is started as root, as the delivery tests start theirs.
``cpu_seconds`` and ``memory`` add up the master and all its children (with the
children that have exited, which the master has waited for).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cpu import CLOCK_TICKS  # bench/cpu.py: the script's folder is on the path

ROLES = ("discard", "relay", "sink")

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix-{role}.bench.example
mydomain = bench.example
mydestination =
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtpd_tls_security_level = may
smtpd_tls_chain_files = {folder}/key.pem, {folder}/chain.pem
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
"""
DISCARD_CF = """\
default_transport = discard:bench
relay_transport = discard:bench
"""
RELAY_CF = """\
relayhost = {relayhost}
smtp_tls_security_level = encrypt
smtp_tls_connection_reuse = yes
default_destination_concurrency_limit = {concurrency}
smtp_connection_reuse_count_limit = {reuse}
"""
HOLD_CF = """\
smtpd_recipient_restrictions = check_recipient_access static:HOLD
"""
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
tlsproxy  unix  - - n - 0 tlsproxy
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def binary() -> str:
    """``postfix``, installed from the Debian package first if it is missing (as root)."""
    found = shutil.which("postfix") or (
        "/usr/sbin/postfix" if os.access("/usr/sbin/postfix", os.X_OK) else None
    )
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit(
            "Postfix is not installed: run the benchmark as root (it installs the Debian package)"
        )
    print("Installing Postfix (apt-get install postfix) …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["debconf-set-selections"],
        input="postfix postfix/main_mailer_type select No configuration\n",
        text=True,
        env=env,
        check=False,
    )
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postfix"]):
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    # The package's own instance, if the package started one, is not ours to run.
    subprocess.run(["postfix", "stop"], capture_output=True, check=False)
    return "/usr/sbin/postfix"


def version() -> str:
    done = subprocess.run(
        [str(Path(binary()).with_name("postconf")), "-d", "-h", "mail_version"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _smaps_kib(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def tree_cpu_seconds(root: int, waited_children: bool = True) -> float | None:
    """CPU seconds of ``root`` and its live children, and (``waited_children``) of the children it
    has reaped; None if ``root`` is gone."""
    fields = _stat_fields(root)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    if waited_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime + cstime
    for pid in children(root):
        child = _stat_fields(pid)
        if child is not None:
            ticks += int(child[11]) + int(child[12])
    return ticks / CLOCK_TICKS


def tree_memory_mib(root: int) -> tuple[float, float, int]:
    """(RSS summed, PSS summed, number of processes) of ``root`` and its children, MiB."""
    pids = [root, *children(root)]
    rss = sum(_smaps_kib(pid, "Rss") for pid in pids)
    pss = sum(_smaps_kib(pid, "Pss") for pid in pids)
    return rss / 1024, pss / 1024, len(pids)


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


class Postfix:
    """A private Postfix instance: its own configuration, queue and log in ``folder``."""

    def __init__(
        self,
        role: str,
        chain_pem: bytes,
        key_pem: bytes,
        *,
        relayhost: str = "",
        concurrency: int = 20,
        reuse: int = 0,
        hold: bool = False,
    ):
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if os.geteuid() != 0:
            raise SystemExit(
                "a private Postfix instance is started as root (its daemons then run as postfix)"
            )
        self.binary = binary()
        self.role = role
        self.folder = Path(tempfile.mkdtemp(prefix=f"bench-postfix-{role}-"))
        self.folder.chmod(0o755)  # the daemons, as user postfix, go through it to their queue
        self.port = free_port()
        (self.folder / "chain.pem").write_bytes(chain_pem)
        key = self.folder / "key.pem"
        key.write_bytes(key_pem)
        key.chmod(0o600)
        for name in ("etc", "queue"):
            (self.folder / name).mkdir()
        main = MAIN_CF.format(folder=self.folder, role=role)
        if role == "relay":
            main += RELAY_CF.format(relayhost=relayhost, concurrency=concurrency, reuse=reuse)
        else:
            main += DISCARD_CF
        if hold:
            main += HOLD_CF
        (self.config_dir / "main.cf").write_text(main)
        (self.config_dir / "master.cf").write_text(MASTER_CF.format(port=self.port))

    @property
    def config_dir(self) -> Path:
        return self.folder / "etc"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def tool(self, name: str, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [str(Path(self.binary).with_name(name)), "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> Postfix:
        self.tool("postfix", "start")
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Postfix does not listen on {self.port}:\n{self.log()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.tool("postfix", "stop", check=False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.master_pid() is not None:
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Postfix:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def master_pid(self) -> int | None:
        try:
            pid = int((self.folder / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _stat_fields(pid) is not None else None

    def cpu_seconds(self) -> float | None:
        """The master's CPU, its live children's and its exited children's, seconds."""
        pid = self.master_pid()
        return None if pid is None else tree_cpu_seconds(pid)

    def memory(self) -> tuple[float, float, int] | None:
        """(RSS, PSS) of the master and its children summed, MiB, and how many processes."""
        pid = self.master_pid()
        return None if pid is None else tree_memory_mib(pid)

    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def queued(self) -> int:
        """Messages in any of its queues (files under incoming, active, deferred, hold, maildrop)."""
        total = 0
        for name in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(self.folder / "queue" / name):
                total += len(files)
        return total

    def held(self) -> int:
        total = 0
        for _root, _dirs, files in os.walk(self.folder / "queue" / "hold"):
            total += len(files)
        return total

    def release(self) -> None:
        """Everything in the hold queue back to delivery, now."""
        self.tool("postsuper", "-H", "ALL")
        self.tool("postqueue", "-f")
