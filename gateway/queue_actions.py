"""Monitor > Queue's Retry Now, Bounce and Delete: requests the console leaves in the spool for the
delivery engine (in the gateway process, which acts on them within a second), each with its audit row."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from appliance import audit
from gateway.spool import Spool


@dataclass(frozen=True)
class QueueAction:
    """Retry Now, Bounce or Delete: what the console asks of delivery (``Spool.request``)."""

    name: str
    label: str
    done: str  # the message after asking; {mids}: "MID 12" or "MIDs 12, 13"
    warning: str = ""  # asked on a page of its own before acting; "" = at once


ACTIONS = [
    QueueAction("retry", "Retry Now", "Delivery will retry {mids} within a second."),
    QueueAction(
        "bounce",
        "Bounce",
        "Delivery will bounce {mids} within a second, with a delivery status notification to the sender.",
        "Each sender gets a delivery status notification for the recipients not yet delivered "
        "(a bounce itself, with the null sender, gets none); the messages leave the queue.",
    ),
    QueueAction(
        "delete",
        "Delete",
        "Delivery will delete {mids} within a second, without notifying the sender.",
        "The messages leave the queue and are lost: their senders are not told.",
    ),
]
ACTIONS_BY_NAME = {action.name: action for action in ACTIONS}


def mids_text(mids: list[int]) -> str:
    return f"MID{'s' if len(mids) > 1 else ''} {', '.join(str(mid) for mid in mids)}"


def ask_delivery(user, action: str, mids: list[int], source: str) -> tuple[list[int], list[int]]:
    """Leave ``action`` for the delivery engine (another process; it acts within a second) on
    each of ``mids``, each with its audit row. The MIDs asked about, and those no longer queued."""
    queue = Spool()
    asked, gone = [], []
    for mid in mids:
        try:
            with transaction.atomic():  # no request without its audit row
                audit.record(
                    user.username, audit.Action.QUEUE, f"asked delivery to {action} MID {mid}", source
                )
                queue.request(mid, action)
        except FileNotFoundError:
            gone.append(mid)
        else:
            asked.append(mid)
    return asked, gone
