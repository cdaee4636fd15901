"""The delivery queue: which message is due and when, the console's requests (Retry Now, Bounce,
Delete, left in the spool), and the messages found in the spool at start. Each due message gets an
attempt (``attempt.Attempts``) as a task of its own, up to the Mail Delivery concurrency limit.
"""

from __future__ import annotations

import asyncio
import datetime
import heapq

from appliance.sections import system_hostname
from destinations.delivery_settings import delivery_of
from gateway import maillog
from gateway.delivery.attempt import Attempts
from gateway.delivery.client import SmtpClient
from gateway.delivery.notices import Notices
from gateway.delivery.pool import ConnectionPool
from tracking.models import Event


class Delivery:
    """The queue: which message is due, and the console's requests for it. An attempt at a message is
    ``attempts``' (``gateway.delivery.attempt``), bounces and alerts ``notices``'."""

    def __init__(self, shared, running_config):
        self.shared, self.running_config = shared, running_config
        self.due: list[tuple[float, int]] = []  # (when, MID), a heap
        self.when: dict[int, float] = {}  # MID -> when it is due; heap entries that differ are stale
        self.busy: set[int] = set()  # being delivered now
        self.held: dict[int, str] = {}  # console requests for messages that were busy when they came
        self.tasks: set[asyncio.Task] = set()
        self.wake = asyncio.Event()
        self.notices = Notices(shared, self.hostname, self.enqueue)
        self.attempts = Attempts(
            shared, ConnectionPool(SmtpClient(shared), self.spawn), self.notices, self.enqueue
        )

    def spawn(self, work) -> None:
        """Run ``work`` beside the deliveries; it counts against the concurrency limit as they do."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- the queue -------------------------------------------------------------------------------

    def enqueue(self, mid: int, when: float = 0.0) -> None:
        self.when[mid] = when
        heapq.heappush(self.due, (when, mid))
        self.wake.set()

    async def follow_requests(self) -> None:
        """Monitor > Queue's Retry Now, Bounce and Delete, which the console leaves in the spool."""
        loop = asyncio.get_running_loop()
        for mid, action in await loop.run_in_executor(None, self.shared.spool.take_requests):
            if mid in self.busy:
                self.held[mid] = action  # its attempt is under way: acted on when it ends
                continue
            await self.act_on(mid, action)

    async def act_on(self, mid: int, action: str) -> None:
        if action == "retry":
            self.enqueue(mid)
        elif action in ("bounce", "delete"):
            self.when.pop(mid, None)
            await self.end_by_request(mid, action)

    async def end_by_request(self, mid: int, action: str) -> None:
        spool, loop = self.shared.spool, asyncio.get_running_loop()
        try:
            envelope, data = await loop.run_in_executor(None, spool.read, mid)
        except FileNotFoundError:
            return
        state = await loop.run_in_executor(None, spool.state, mid)
        pending = [r for r in envelope.rcpt_tos if r not in state.done]
        if action == "bounce" and pending:
            state.done.update(dict.fromkeys(pending, "bounced"))
            await loop.run_in_executor(None, spool.save_state, mid, state)
            await self.notices.bounce(
                envelope, data, dict.fromkeys(pending, "5.0.0 - Bounced by an administrator")
            )
        else:
            maillog.info(f"MID {mid} deleted from the queue by an administrator")
            self.shared.recorder.event(
                mid, Event.Kind.DELETED, "Deleted from the queue by an administrator", pending
            )
        await loop.run_in_executor(None, spool.remove, mid)

    def finished(self, mid: int) -> None:
        """An attempt ended: a console request that came meanwhile is acted on now."""
        self.busy.discard(mid)
        action = self.held.pop(mid, None)
        if action:
            self.spawn(self.act_on(mid, action))

    def recover(self) -> None:
        """Everything in the spool at start, each when its state says."""
        for mid in self.shared.spool.mids():
            state = self.shared.spool.state(mid)
            when = (
                datetime.datetime.fromisoformat(state.next_attempt).timestamp() if state.next_attempt else 0.0
            )
            self.enqueue(mid, when)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.recover)
        await loop.run_in_executor(None, self.notices.load)
        tasks = self.tasks
        while not stop.is_set():
            config = self.running_config()
            limit = delivery_of(config)["max_concurrency"]
            now = datetime.datetime.now(datetime.UTC).timestamp()
            await self.follow_requests()
            self.attempts.pool.close_idle()
            while self.due and self.due[0][0] <= now and len(tasks) < limit:
                when, mid = heapq.heappop(self.due)
                if self.when.get(mid) != when or mid in self.busy:
                    continue  # stale: retried sooner, or ended meanwhile
                del self.when[mid]
                self.busy.add(mid)
                task = asyncio.create_task(self.attempts.deliver(mid, config))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _task, mid=mid: self.finished(mid))
            wait = min(max(self.due[0][0] - now, 0.05), 1.0) if self.due else 1.0
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), wait)
            except TimeoutError:
                pass
        self.attempts.pool.close_idle(older_than=0)
        for task in list(tasks):
            task.cancel()

    def hostname(self) -> str:
        return system_hostname(self.running_config())
