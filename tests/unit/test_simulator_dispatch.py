"""The simulator's indexed dispatch (issue 15: the busy day of 1,000 agents and 300,000 contacts)
gives exactly the events of the scan it replaced, every agent for every waiting contact, for the
same seed: same assignments, same random draws in the same order. Checked on an understaffed
center (long queues: the case the scan was slow in), with chat concurrency, missed offers,
transfers, and every kind of incident."""

from __future__ import annotations

import dataclasses
from functools import partial

from producers.scenario import Incident, Scenario
from producers.simulate import Simulator

START = 1_790_000_000.0


class ScanningSimulator(Simulator):
    """The dispatch as it was before the index: the reference."""

    def _dispatch(self) -> None:
        for c in list(self._waiting):
            free = [
                a
                for a in self.agents
                if a.channel == c.spec.channel and c.queue in a.skills and self._free(a)
            ]
            if not free:
                continue
            agent = min(free, key=lambda a: (len(a.active), self.rng.random()))
            self._waiting.remove(c)
            agent.active.add(c.cid)
            self._at(self.now + self.rng.uniform(0.5, 2.0), partial(self._answer, c, agent))


def events(
    cls: type[Simulator], seed: int, scenario: Scenario, hours: float, incidents: tuple[Incident, ...] = ()
) -> tuple[list, list[int]]:
    sim = cls(seed, START, scenario, incidents)
    out: list = []
    waiting: list[int] = []
    t = START
    while t < START + hours * 3600:
        t += 60
        out.extend(sim.advance(t))
        waiting.append(sim.waiting)
    return out, waiting


def test_the_indexed_dispatch_gives_the_events_of_the_full_scan_for_a_seed():
    base = Scenario.default().flat()
    understaffed = dataclasses.replace(base.scaled(rate=4.0, agents=0.25), miss_probability=0.05)
    queue = base.queues[0].name
    incidents = (
        Incident("abandon-spike", 1800, 900, queue=queue),
        Incident("agents-away", 3600, 1200, count=5),
        Incident("agent-stuck", 5400, 600, agent="agent-002"),
        Incident("bad-input", 600, count=4),
    )
    for seed, scenario, hours, inc, queues_build_up in (
        (7, understaffed, 3, incidents, True),
        (11, base, 2, (), False),
    ):
        new, new_waiting = events(Simulator, seed, scenario, hours, inc)
        old, old_waiting = events(ScanningSimulator, seed, scenario, hours, inc)
        assert len(new) > 1000 and (max(old_waiting) > 50 or not queues_build_up)  # a real workload
        assert new_waiting == old_waiting
        assert new == old
