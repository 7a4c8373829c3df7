"""A worker killed with SIGKILL stays in the consumer group until its session times out; its
replacement on the same data directory tells the coordinator it left (streams/faust_ext/predecessor.py), so
the group rebalances at once. With a 60 s session timeout the replacement must be ready long
before the dead member would have expired; a worker that still runs is never evicted."""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.support import Env, Worker

pytestmark = pytest.mark.integration

SESSION_S = 60  # Faust allows at most its request timeout (90 s)


def test_replacement_of_a_killed_worker_does_not_wait_for_its_session(env: Env, workers: list[Worker]):
    slow = {"CCMON_SESSION_TIMEOUT_S": str(SESSION_S), "CCMON_LOG_LEVEL": "info"}
    first = Worker(env, **slow)
    workers.append(first)
    second = Worker(env, **slow)  # beside it on the same data directory: the first still runs
    workers.append(second)
    assert "killed worker" not in second.log.read_text()

    first.stop(signal.SIGKILL)
    started = time.monotonic()
    third = Worker(env, **slow)  # waits for /health: every partition assigned and recovered
    workers.append(third)
    ready_after = time.monotonic() - started
    assert "told the group that 1 killed worker(s) of this data directory left" in third.log.read_text()
    assert ready_after < SESSION_S * 0.75, (
        f"ready after {ready_after:.0f} s: the group waited for the dead member"
    )
    second.wait_ready()  # the survivor took part in the same rebalance
    print(f"replacement ready {ready_after:.1f} s after the SIGKILL (session timeout {SESSION_S} s)")
