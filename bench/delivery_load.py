"""Benchmark: outbound delivery under Required TLS with connection reuse; our gateway and Postfix
relaying the same messages to the same sink, in one run.

Run (as root: Postfix): .venv/bin/python bench/delivery_load.py [--messages 2000] [--quick]
                        [--size 10240] [--sink aiosmtpd|postfix] [--connections 50]
                        [--per-connection 50] [--no-postfix]

The sink is a receiving SMTP server on loopback offering STARTTLS with the
appliance's Demo certificate: by default aiosmtpd in one process per core on one
port (SO_REUSEPORT), counting what it takes and dropping it; ``--sink postfix``
is a private Postfix with its discard transport instead.

Ours: a throwaway appliance (``runappliance``) gets an SMTP route
``sink.example → 127.0.0.1:SINKPORT`` and a Destination Controls entry
``sink.example --tls required --max-connections C --max-messages M``
(``smtproutes new``, ``destconfig new``, ``commit``), then stops. Its spool is
filled with N messages by the listener's own function (``Spool.accept``: file
fsync'd, renamed into the queue, directory fsync'd), and ``rungateway`` is
started alone: the clock starts at its ``Gateway ready`` line (delivery starts
right after it, with the whole queue due) and stops at the N-th message taken by
the sink.

Postfix: a private instance (``bench/postfix.py``) with ``relayhost =
[127.0.0.1]:SINKPORT``, ``smtp_tls_security_level = encrypt``,
``smtp_tls_connection_reuse = yes``, C connections (``default_destination_
concurrency_limit``) and M messages a connection (``smtp_connection_reuse_count_
limit``). The same N messages are sent to it over plain SMTP and held
(``check_recipient_access static:HOLD``); once all are in its hold queue the
clock starts, ``postsuper -H ALL`` and ``postqueue -f`` release them, and it
stops at the N-th message taken by the sink. So both start from a queue that
holds every message durably, and both are timed to the same sink.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import os
import re
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import postfix  # bench/postfix.py: the script's folder is on the path
import smtp_load
from cpu import machine_busy_seconds  # bench/cpu.py

DOMAIN = "sink.example"
RECIPIENT = f"user@{DOMAIN}"
SENDER = "load@client.example.org"
SINKS = ("aiosmtpd", "postfix")


# --- the sink ------------------------------------------------------------------------------


class SinkCounters:
    """What the sink processes took, shared with this process."""

    def __init__(self, context):
        self.messages = context.Value("q", 0)
        self.plain = context.Value("q", 0)  # messages that came without TLS (must stay 0)
        self.tls_sessions = context.Value("q", 0)
        self.last = context.Value("d", 0.0)  # time.time() of the last message


def sink_process(port: int, chain: Path, key: Path, counters: SinkCounters, ready) -> None:
    from aiosmtpd.smtp import SMTP

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)

    class Handler:
        def handle_STARTTLS(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
            with counters.tls_sessions.get_lock():
                counters.tls_sessions.value += 1
            return True

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            with counters.messages.get_lock():
                counters.messages.value += 1
                counters.last.value = time.time()
                if session.ssl is None:
                    counters.plain.value += 1
            return "250 2.0.0 Ok: taken"

    handler = Handler()

    async def serve():
        loop = asyncio.get_running_loop()
        await loop.create_server(
            lambda: SMTP(handler, hostname=f"mx.{DOMAIN}", tls_context=context, decode_data=False),
            "127.0.0.1",
            port,
            reuse_port=True,
        )
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


class AiosmtpdSink:
    """aiosmtpd with STARTTLS in ``processes`` processes sharing one port."""

    name = "aiosmtpd"

    def __init__(self, chain_pem: bytes, key_pem: bytes, folder: Path, processes: int):
        context = multiprocessing.get_context("fork")
        self.port = smtp_load.free_port()
        self.counters = SinkCounters(context)
        chain, key = folder / "sink-chain.pem", folder / "sink-key.pem"
        chain.write_bytes(chain_pem)
        key.write_bytes(key_pem)
        self.processes = []
        for _ in range(processes):
            ready = context.Event()
            process = context.Process(
                target=sink_process, args=(self.port, chain, key, self.counters, ready), daemon=True
            )
            process.start()
            if not ready.wait(30):
                raise SystemExit("the sink did not start")
            self.processes.append(process)

    def taken(self) -> int:
        return self.counters.messages.value

    def last(self) -> float:
        return self.counters.last.value

    def sessions(self) -> tuple[int, int]:
        """(TLS sessions, messages in clear) so far."""
        return self.counters.tls_sessions.value, self.counters.plain.value

    def cpu_seconds(self) -> float:
        return sum(postfix.tree_cpu_seconds(p.pid, waited_children=False) or 0 for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.join(10)


class PostfixSink:
    """A private Postfix, discarding; messages counted in its log."""

    name = "postfix"

    def __init__(self, chain_pem: bytes, key_pem: bytes):
        self.postfix = postfix.Postfix("sink", chain_pem, key_pem).start()
        self.port = self.postfix.port
        self.seen = 0
        self.seen_at = 0.0
        self.offset = 0

    def taken(self) -> int:
        path = self.postfix.folder / "maillog"
        with open(path, "rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        found = complete.count(b"status=sent (bench)")
        if found:
            self.seen += found
            self.seen_at = time.time()
        return self.seen

    def last(self) -> float:
        return self.seen_at

    def sessions(self) -> tuple[int, int]:
        """(TLS sessions, messages in clear) so far."""
        log = self.postfix.log()
        tls = len(re.findall(r"smtpd\[\d+\]: disconnect from .* starttls=1", log))
        plain = len(re.findall(r"smtpd\[\d+\]: disconnect from (?!.* starttls=1).* data=", log))
        return tls, plain

    def cpu_seconds(self) -> float:
        return self.postfix.cpu_seconds() or 0.0

    def stop(self) -> None:
        self.postfix.stop()


# --- filling the queues --------------------------------------------------------------------


def message(number: int, size: int) -> bytes:
    body = smtp_load.make_message(size)
    return body.replace(
        b"<load@client.example.org>\r\n\r\n", f"<load-{number}@client.example.org>\r\n\r\n".encode(), 1
    )


def fill_our_spool(data_dir: Path, count: int, size: int) -> float:
    """``count`` messages in the stopped appliance's spool, written as the listener writes them (8 at a
    time, as concurrent sessions would); seconds taken."""
    sys.path.insert(0, str(smtp_load.PROJECT))
    from gateway.spool import Envelope, IdCounter, Spool

    spool = Spool(data_dir / "spool")
    mids = IdCounter(data_dir / "run" / "mid")
    envelopes = [
        Envelope(
            mid=mids.take(),
            mail_from=SENDER,
            rcpt_tos=[RECIPIENT],
            received=datetime.datetime.now(datetime.UTC).isoformat(),
            listener=smtp_load.LISTENER,
            peer="127.0.0.1",
        )
        for _ in range(count)
    ]
    began = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda e: spool.accept(e, message(e.mid, size)), envelopes))
    return time.monotonic() - began


async def inject(port: int, count: int, size: int, connections: int) -> None:
    """``count`` messages over plain SMTP, ``connections`` sessions at once, many messages each."""

    async def one(numbers):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await smtp_load.reply(reader, 220, "banner")
        writer.write(b"EHLO client.example.org\r\n")
        await smtp_load.reply(reader, 250, "EHLO")
        for number in numbers:
            writer.write(f"MAIL FROM:<{SENDER}>\r\n".encode())
            await smtp_load.reply(reader, 250, "MAIL")
            writer.write(f"RCPT TO:<{RECIPIENT}>\r\n".encode())
            await smtp_load.reply(reader, 250, "RCPT")
            writer.write(b"DATA\r\n")
            await smtp_load.reply(reader, 354, "DATA")
            writer.write(message(number, size) + b".\r\n")
            await smtp_load.reply(reader, 250, "end of data")
        writer.write(b"QUIT\r\n")
        await smtp_load.reply(reader, 221, "QUIT")
        writer.close()

    await asyncio.gather(*(one(range(n, count, connections)) for n in range(connections)))


# --- one run ---------------------------------------------------------------------------------


@dataclass
class Run:
    server: str
    messages: int
    seconds: float  # from the start of delivery to the last message at the sink
    first_seconds: float  # from the start to the first message at the sink
    server_cpu: float | None  # CPU seconds, all its processes
    sink_cpu: float
    machine_cpu: float  # CPU seconds of the whole machine
    tls_sessions: int  # the sink's TLS sessions: connections used
    plain: int  # messages the sink took in clear (Required TLS: must be 0)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def wait_for_sink(sink, base: int, count: int, began: float, timeout: float) -> tuple[float, float]:
    """Until the sink has ``count`` messages more than ``base``; (seconds from ``began`` to the first,
    to the last)."""
    first = None
    deadline = time.monotonic() + timeout
    while True:
        taken = sink.taken()
        if first is None and taken > base:
            first = time.time() - began
        if taken >= base + count:
            return first, sink.last() - began
        if time.monotonic() > deadline:
            raise SystemExit(f"the sink has {taken - base} messages of {count} after {timeout:.0f} s")
        time.sleep(0.005)


def measure(name: str, sink, count: int, start, cpu_of, timeout: float) -> Run:
    """``start()`` begins delivery and returns when it began; timed to the sink's ``count``-th new message."""
    base, sessions_before = sink.taken(), sink.sessions()
    sink_before = sink.cpu_seconds()
    began = start()
    server_before, machine_before = cpu_of(), machine_busy_seconds()
    first, seconds = wait_for_sink(sink, base, count, began, timeout)
    server_after = cpu_of()
    return Run(
        server=name,
        messages=count,
        seconds=seconds,
        first_seconds=first,
        server_cpu=None if server_before is None or server_after is None else server_after - server_before,
        sink_cpu=sink.cpu_seconds() - sink_before,
        machine_cpu=machine_busy_seconds() - machine_before,
        tls_sessions=sink.sessions()[0] - sessions_before[0],
        plain=sink.sessions()[1] - sessions_before[1],
    )


def run_ours(appliance: smtp_load.Appliance, sink, options) -> Run:
    filled = fill_our_spool(appliance.data_dir, options.messages, options.size)
    print(
        f"ours: {options.messages} messages spooled in {filled:.1f} s "
        f"({options.messages / filled:.0f}/s, each fsync'd)",
        flush=True,
    )

    def start() -> float:
        appliance.run("rungateway")
        return appliance.wait_for(r"^Gateway ready: ")

    def cpu():
        pid = appliance.gateway_pid()
        return None if pid is None else postfix.tree_cpu_seconds(pid, waited_children=False)

    try:
        return measure("ours", sink, options.messages, start, cpu, options.timeout)
    finally:
        appliance.halt()


def run_postfix(chain: bytes, key: bytes, sink, options) -> Run:
    relay = postfix.Postfix(
        "relay",
        chain,
        key,
        relayhost=f"[127.0.0.1]:{sink.port}",
        concurrency=options.connections,
        reuse=options.per_connection,
        hold=True,
    )
    with relay:
        began = time.monotonic()
        asyncio.run(inject(relay.port, options.messages, options.size, 4))
        deadline = time.monotonic() + 60
        while relay.held() < options.messages:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"Postfix holds {relay.held()} of {options.messages}:\n{relay.log()[-3000:]}"
                )
            time.sleep(0.05)
        print(
            f"Postfix: {options.messages} messages held in {time.monotonic() - began:.1f} s (over SMTP)",
            flush=True,
        )

        def start() -> float:
            now = time.time()
            relay.release()
            return now

        return measure("Postfix", sink, options.messages, start, relay.cpu_seconds, options.timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages to deliver (each server)")
    parser.add_argument("--quick", action="store_true", help="1,000 messages (for make bench)")
    parser.add_argument("--size", type=int, default=10 * 1024, help="message size in bytes")
    parser.add_argument("--sink", choices=SINKS, default="aiosmtpd", help="the receiving server")
    parser.add_argument("--sink-processes", type=int, default=os.cpu_count(), help="aiosmtpd sink processes")
    parser.add_argument("--connections", type=int, default=50, help="connections to the sink at most")
    parser.add_argument("--per-connection", type=int, default=50, help="messages a connection at most")
    parser.add_argument(
        "--max-concurrency",
        type=int,
        help="our Maximum Concurrent Connections, system-wide (deliveryconfig setup; default: as shipped, 500)",
    )
    parser.add_argument("--no-postfix", action="store_true", help="measure only our gateway")
    parser.add_argument("--keep", action="store_true", help="keep the appliance's data directory (mail logs)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the sink")
    options = parser.parse_args()
    if options.quick:
        options.messages = 1000
    started = time.monotonic()

    appliance = smtp_load.Appliance(prefix="bench-delivery-")
    sink = None
    try:
        appliance.wait_for(r"^Appliance ready: ")
        chain, key = appliance.certificate()
        sink = (
            PostfixSink(chain, key)
            if options.sink == "postfix"
            else AiosmtpdSink(chain, key, appliance.data_dir, options.sink_processes)
        )
        appliance.manage("smtproutes", "new", DOMAIN, "--host", f"127.0.0.1:{sink.port}")
        appliance.manage(
            "destconfig",
            "new",
            DOMAIN,
            "--tls",
            "required",
            "--max-connections",
            str(options.connections),
            "--max-messages",
            str(options.per_connection),
        )
        if options.max_concurrency:
            appliance.manage("deliveryconfig", "setup", "--max-concurrency", str(options.max_concurrency))
        appliance.commit(f"bench: {DOMAIN} by SMTP route to the sink, TLS required")
        appliance.halt()
        print(
            f"Outbound delivery, Required TLS: {options.messages} messages of {options.size} B to {DOMAIN}, "
            f"at most {options.connections} connections and {options.per_connection} messages a connection; "
            f"sink {sink.name} on 127.0.0.1:{sink.port}; {os.cpu_count()} cores; "
            f"load average before: {smtp_load.load_average()}",
            flush=True,
        )
        runs = [run_ours(appliance, sink, options)]
        if not options.no_postfix:
            runs.append(run_postfix(chain, key, sink, options))
        print()
        print(
            "| server | messages | seconds | messages/s | first at sink s | server CPU s | ms CPU a message "
            "| sink CPU s | other CPU s | TLS connections | messages a connection | in clear |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for run in runs:
            other = run.machine_cpu - (run.server_cpu or 0) - run.sink_cpu
            print(
                f"| {run.server} | {run.messages} | {run.seconds:.2f} | {run.rate:.0f} | {run.first_seconds:.2f} | "
                f"{smtp_load.fmt(run.server_cpu, '{:.1f}')} | "
                f"{smtp_load.fmt(None if run.server_cpu is None else run.server_cpu / run.messages * 1000, '{:.2f}')} "
                f"| {run.sink_cpu:.1f} | {max(0.0, other):.1f} | {run.tls_sessions} | "
                f"{run.messages / max(1, run.tls_sessions):.1f} | {run.plain} |",
                flush=True,
            )
        if len(runs) == 2:
            print(f"\nours / Postfix, messages/s: {runs[0].rate / runs[1].rate:.2f}×")
        print(
            f"\nWhole run: {time.monotonic() - started:.0f} s; load average after: {smtp_load.load_average()}"
        )
    finally:
        if sink is not None:
            sink.stop()
        if options.keep:
            appliance.halt()
            print(f"The appliance's data directory: {appliance.data_dir}")
        else:
            appliance.stop()


if __name__ == "__main__":
    main()
