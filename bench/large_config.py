"""A realistic large configuration, committed: certificates, destination entries and HAT senders.

Run against an appliance's data directory (the appliance may be running):
    APPLIANCE_DATA_DIR=DIR .venv/bin/python bench/large_config.py [CERTIFICATES DESTINATIONS SENDERS]
Defaults: 1,000 certificates (copies of the Demo certificate under other names), 10,000 Destination
Controls entries and 5,000 senders in the IncomingMail listener's ALLOWED_LIST. The rows go straight
into the candidate inside one ``workflow.submit`` (as a load would stage them), then one commit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")

CERTIFICATES, DESTINATIONS, SENDERS = 1000, 10_000, 5000
LISTENER, GROUP = "IncomingMail", "ALLOWED_LIST"


def rows(certificates: int, destinations: int, senders: int):
    """The change that puts the rows into the candidate (for ``workflow.submit``)."""
    from appliance.config.levels import CLUSTER
    from certificates.models import Certificate
    from destinations import entries
    from destinations.models import Destination
    from listeners.models import SenderEntry, SenderGroup
    from listeners.senders import parse_sender

    def add_rows():
        cluster_certificates = Certificate.objects.at(CLUSTER)
        demo = cluster_certificates.get(name="Demo")
        cluster_certificates.bulk_create(
            Certificate(
                name=f"cert-{n:05d}",
                certificate_pem=demo.certificate_pem,
                private_key_sealed=demo.private_key_sealed,
                common_name=f"host{n}.example.org",
                issuer=demo.issuer,
                domains=f"host{n}.example.org",
                not_before=demo.not_before,
                not_after=demo.not_after,
                self_signed=True,
            )
            for n in range(certificates)
        )
        entries.default_row(CLUSTER)
        Destination.objects.at(CLUSTER).bulk_create(
            (
                Destination(name=f"d{n:05d}.example.com", tls="required", max_connections=n % 1000 + 1)
                for n in range(destinations)
            ),
            batch_size=2000,
        )
        group = SenderGroup.objects.get(listener__level=CLUSTER, listener__name=LISTENER, name=GROUP)
        sender_rows = []
        for n in range(senders):
            sender = parse_sender(f"10.{n // 65536 + 100}.{n // 256 % 256}.{n % 256}")
            sender_rows.append(
                SenderEntry(
                    group=group,
                    position=n,
                    host=sender.host,
                    range_start=sender.range_start,
                    range_end=sender.range_end,
                )
            )
        SenderEntry.objects.bulk_create(sender_rows, batch_size=2000)

    return add_rows


def populate(admin, certificates: int, destinations: int, senders: int) -> None:
    """Stage the rows as ``admin`` and commit them."""
    from appliance import workflow

    workflow.submit(admin, "a large configuration", rows(certificates, destinations, senders))
    workflow.commit(admin, "a large configuration")


def main(arguments: list[str]) -> None:
    import django

    django.setup()
    from appliance.models import User

    counts = [int(value) for value in arguments] or [CERTIFICATES, DESTINATIONS, SENDERS]
    populate(User.objects.get(username="admin"), *counts)
    print("Committed: {} certificates, {} destinations, {} senders".format(*counts))


if __name__ == "__main__":
    main(sys.argv[1:])
