"""The ordered state-write/commit protocol: what makes a worker's replay after SIGKILL exact.

Three ordering rules (docs/architecture.md, "Restarts, duplicates and what is replayed", rule 1):

1. **Facts before state.** A stage-1 batch's state records are written to the changelog only once
   the broker has acknowledged the batch's facts and dead letters. After a crash an event is
   either in the recovered state with its facts delivered, or is processed again from the same
   state (making facts with the same ids, which stage 2 drops).
2. **Batch order.** The state writes of batch *n+1* are queued only after those of batch *n*, even
   when its facts are acknowledged first: a crash loses a suffix of each changelog partition,
   never a middle. The wait runs in the background, so the next batch is processed meanwhile;
   values are encoded when the batch ends (the in-memory records keep changing).
3. **No commit ahead of state.** Before every offset commit the consumer awaits the broker's
   acknowledgement of every state write queued so far (stage 2's too); a write that failed
   raises there, so the commit is not made, and every later commit fails the same way.

Plain asyncio over anything with a ``write(partition, key, value)`` coroutine returning the
delivery future (``streams.faust_ext.changelog.Changelog``), so the unit tests drive it with a fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol

from streams import killpoints

__all__ = ["ChangelogWriter", "StateWriter"]


class ChangelogWriter(Protocol):
    async def write(self, partition: int, key: str, value: bytes | None) -> Awaitable[Any]: ...


class StateWriter:
    """Queues state writes by the three rules; ``written`` is what the consumer awaits before a commit."""

    def __init__(self) -> None:
        self._chain: asyncio.Future[None] | None = None
        #: deliveries of changelog writes since the last commit, awaited before the next one
        self._unacked: list[Awaitable[Any]] = []

    def after_acks(
        self,
        acks: list[Awaitable[Any]],
        changelog: ChangelogWriter,
        writes: list[tuple[int, str, bytes | None]],
    ) -> None:
        """Rules 1 and 2: queue ``writes`` (partition, key, encoded value or ``None``) once ``acks``
        are acknowledged and the previous batch's writes are queued. Returns at once."""
        self._chain = asyncio.ensure_future(self._write_after(self._chain, acks, changelog, writes))

    async def _write_after(
        self,
        previous: asyncio.Future[None] | None,
        acks: list[Awaitable[Any]],
        changelog: ChangelogWriter,
        writes: list[tuple[int, str, bytes | None]],
    ) -> None:
        if previous is not None:
            await previous
        if acks:
            await asyncio.gather(*acks)
        killpoints.reached("facts-acked")
        for partition, key, value in writes:
            self._unacked.append(await changelog.write(partition, key, value))
        killpoints.reached("state-queued")

    async def write_now(
        self, changelog: ChangelogWriter, partition: int, key: str, value: bytes | None
    ) -> None:
        """A write with no facts to wait for (stage 2, the sweep's expiry): queued now, and
        acknowledged before the next commit (rule 3)."""
        self._unacked.append(await changelog.write(partition, key, value))

    async def write_all(
        self, changelog: ChangelogWriter, records: Iterable[tuple[int, str, bytes | None]]
    ) -> None:
        for partition, key, value in records:
            await self.write_now(changelog, partition, key, value)

    async def written(self) -> None:
        """Rule 3: returns once the broker has acknowledged every write queued so far; raises if
        one could not be delivered. Faust flushes its producer before a commit, but a flush also
        ends when a write failed (its retries exhausted during a broker outage), and the commit
        would then cover state that is lost; raising here aborts it, and the worker restarts from
        the previous one."""
        while self._chain is not None and not self._chain.done():
            await asyncio.shield(self._chain)
        if self._chain is not None and self._chain.done():
            failed = self._chain.exception()
            if failed is not None:
                raise failed
        pending = len(self._unacked)  # writes queued meanwhile wait for the next commit
        if pending:
            await asyncio.gather(*self._unacked[:pending])
            del self._unacked[:pending]  # not on failure: every later commit fails too
