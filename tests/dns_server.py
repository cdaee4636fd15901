"""A DNS server of the tests' own on loopback (the machine has no outside DNS), with dnslib."""

from __future__ import annotations

import socket

from dnslib import QTYPE, RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class ZoneResolver(BaseResolver):
    """Answers from a zone given as text lines ("example.org. 300 IN MX 10 mx.example.org.")."""

    def __init__(self, zone: str):
        self.records = RR.fromZone(zone)
        self.questions: list[tuple[str, str]] = []

    def resolve(self, request, handler):
        reply = request.reply()
        name, kind = request.q.qname, QTYPE[request.q.qtype]
        self.questions.append((str(name), kind))
        for record in self.records:
            if record.rname == name and QTYPE[record.rtype] == kind:
                reply.add_answer(record)
        if not reply.rr and not any(record.rname == name for record in self.records):
            reply.header.rcode = 3  # NXDOMAIN
        return reply


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(zone: str) -> tuple[DNSServer, ZoneResolver, int]:
    resolver = ZoneResolver(zone)
    port = free_udp_port()
    server = DNSServer(
        resolver,
        port=port,
        address="127.0.0.1",
        logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"),
    )
    server.start_thread()
    return server, resolver, port
