"""How a commit made on one machine reaches the others: the supervisor of each machine waits on
PostgreSQL's LISTEN/NOTIFY (``workflow.commit`` notifies) and polls the running version besides, so a
lost connection costs at most a poll. A new version is announced to the machine's own services
(``workflow.announce``), which follow it as they follow a local commit."""

from __future__ import annotations

import time

import psycopg
from django.db import connection

from appliance import workflow


class CommitWaiter:
    """Sleeps until the next poll, or until a commit anywhere in the cluster, whichever comes first."""

    def __init__(self):
        self.listening: psycopg.Connection | None = None

    def wait(self, seconds: float) -> None:
        if connection.vendor != "postgresql":
            time.sleep(seconds)
            return
        try:
            if self.listening is None:
                self.listening = psycopg.connect(**connection.get_connection_params(), autocommit=True)
                self.listening.execute(f"LISTEN {workflow.COMMIT_CHANNEL}")
            for _notice in self.listening.notifies(timeout=seconds, stop_after=1):
                pass
        except psycopg.Error:
            self.close()
            time.sleep(seconds)  # polling goes on; the next wait listens again

    def close(self) -> None:
        if self.listening is not None:
            self.listening.close()
            self.listening = None
