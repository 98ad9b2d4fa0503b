"""The scheduler: priority, aging, resource fit, backfill and reservation."""

from __future__ import annotations

from modelyard.jobs.scheduler import Policy, Waiting, effective_priority, plan
from modelyard.jobs.spec import Resources

GB = 1024**3
MACHINE = Resources(2, 8 * GB, 0)


def job(
    id: int, priority: int = 0, since: float = 0.0, cpus: float = 1, memory: int = GB
) -> Waiting:
    return Waiting(id, priority, since, Resources(cpus, memory, 0))


def ids(chosen: list[Waiting]) -> list[int]:
    return [j.id for j in chosen]


def test_higher_priority_first_then_oldest() -> None:
    waiting = [job(1, 0, since=0), job(2, 5, since=50), job(3, 0, since=10), job(4, 5, since=40)]
    assert ids(plan(waiting, Resources(2, 8 * GB, 0), MACHINE, now=60, policy=Policy())) == [4, 2]


def test_aging_lets_an_old_low_priority_job_overtake() -> None:
    old_low, new_high = job(1, priority=0, since=0), job(2, priority=3, since=1000)
    policy = Policy(aging_s=100)
    assert effective_priority(old_low, 1000, 100) == 10
    one_slot = Resources(1, 8 * GB, 0)
    assert ids(plan([old_low, new_high], one_slot, MACHINE, now=1000, policy=policy)) == [1]
    # without the wait, the high priority job goes first
    assert ids(plan([job(1, 0, 1000), new_high], one_slot, MACHINE, 1000, policy)) == [2]


def test_jobs_are_placed_by_what_is_free() -> None:
    waiting = [job(1, 9, cpus=2), job(2, 5, cpus=1), job(3, 1, cpus=1, memory=7 * GB)]
    # one core free: the 2-core job waits, the 1-core jobs fill in if memory allows
    assert ids(plan(waiting, Resources(1, 2 * GB, 0), MACHINE, 1, Policy())) == [2]
    assert ids(plan(waiting, Resources(2, 8 * GB, 0), MACHINE, 1, Policy())) == [1]
    assert ids(plan(waiting, Resources(0, 8 * GB, 0), MACHINE, 1, Policy())) == []


def test_a_job_blocked_too_long_holds_back_the_ones_behind_it() -> None:
    big, small = job(1, 5, since=0, cpus=2), job(2, 0, since=0, cpus=1)
    one_core = Resources(1, 8 * GB, 0)
    assert ids(plan([big, small], one_core, MACHINE, 10, Policy(reserve_after_s=300))) == [2]
    assert ids(plan([big, small], one_core, MACHINE, 400, Policy(reserve_after_s=300))) == []


def test_a_job_larger_than_the_worker_never_blocks_others() -> None:
    huge, small = job(1, 9, since=0, cpus=64), job(2, 0, since=0)
    assert ids(plan([huge, small], MACHINE, MACHINE, 10_000, Policy(reserve_after_s=1))) == [2]


def test_no_starvation_under_a_stream_of_high_priority_jobs() -> None:
    """A low priority job submitted at t=0 runs once its age outweighs newer arrivals."""
    policy, low = Policy(aging_s=10), job(0, priority=0, since=0)
    started_at = None
    for t in range(0, 1000, 5):  # a new priority-5 job every 5 s, one core free each time
        newcomer = job(t + 1, priority=5, since=t)
        if ids(plan([low, newcomer], Resources(1, 8 * GB, 0), MACHINE, t, policy)) == [0]:
            started_at = t
            break
    assert started_at is not None and started_at <= 60
