"""`--jobs`: the schedule hands every plan out once, and the verdicts that come back from the
workers (a verdict many runs share crosses the pipe once, then as its number) are each plan's
own, in plan order, as one process gives them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from awf_sim.chaos import Target, build_baseline, plan_token
from awf_sim.chaos._memo import evaluate
from awf_sim.chaos._pool import _groups, _Schedule, evaluate_all
from awf_sim.chaos._space import fault_key, plan_order, random_plans
from awf_sim.flow import load_flow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("seed", range(30))
def test_the_schedule_hands_out_every_plan_once_whoever_asks(seed: int) -> None:
    rng = random.Random(seed)
    jobs = rng.randint(2, 4)
    sizes = [rng.choice([1, 2, 5, 17, 40, 90]) for _ in range(rng.randint(1, 40))]
    groups, start = [], 0
    for n in sizes:
        groups.append(list(range(start, start + n)))
        start += n
    most = rng.choice([1, 8, 32, 64])
    todo = _Schedule([list(g) for g in groups], jobs, most)
    handed: list[int] = []
    while todo:
        chunk = todo.take(rng.randrange(jobs))  # workers finish in any order
        assert chunk, "a schedule with plans left gave an empty chunk"
        assert len(chunk) <= max(most, 4)
        handed += chunk
    assert todo.take(0) == []
    todo.close()
    assert sorted(handed) == list(range(start))


def test_a_worker_keeps_to_its_group_and_small_groups_go_whole() -> None:
    groups = [list(range(60)), list(range(60, 63)), list(range(63, 66))]
    todo = _Schedule(groups, 2, 8)
    assert todo.take(0) == list(range(8))  # the largest group first
    more = todo.take(0)
    assert more == list(range(8, 8 + len(more)))  # more of the same group
    assert len(more) >= 4
    todo.close()
    other = _Schedule([list(range(3)), list(range(3, 6)), list(range(6, 100))], 2, 8)
    other.take(0)
    assert other.take(1) == [0, 1, 2, 3, 4, 5]  # two small groups, whole, in one chunk
    other.close()


def test_a_worker_with_nothing_left_takes_the_second_half_of_the_largest_group() -> None:
    todo = _Schedule([list(range(40)), list(range(40, 44))], 2, 4)
    assert todo.take(0) == [0, 1, 2, 3]
    assert todo.take(1) == [40, 41, 42, 43]  # the group nobody started
    # Nothing of its own left: the second half of the rest of group 0, from its start, and
    # from then on more of that half; the owner keeps to the first half.
    assert todo.take(1) == [22, 23, 24, 25]
    assert todo.take(1) == [26, 27, 28, 29]
    assert todo.take(0) == [4, 5, 6, 7]
    todo.close()


def test_plans_that_begin_at_the_same_fault_point_are_one_group_in_fault_order() -> None:
    flow = load_flow(EXAMPLES / "order_processing.py")
    workflow = flow.pick(None)
    base = build_baseline(Target(workflow, workflow.examples[0], db=flow.database))
    plans = [[f] for f in base.singles]
    plans += random_plans(base, 300, 3, random.Random(1), set())
    plans.append([dict(f) for f in plans[-1]])  # a copy of a plan's faults ranks as they do
    groups = _groups(base, plans)
    assert sorted(i for g in groups for i in g) == list(range(len(plans)))
    rank = plan_order(base)

    def point(f: dict[str, object]) -> tuple[object, object]:
        return f["step"], f.get("attempt")

    for group in groups:
        assert len({point(plans[i][0]) for i in group}) == 1
        ranks = [[rank[fault_key(f)] for f in plans[i]] for i in group]
        assert ranks == sorted(ranks)
    copies = [g for g in groups if len(plans) - 1 in g]
    assert len(copies) == 1
    assert len(plans) - 2 in copies[0]
    # Kinds at one fault point go together: fewer groups than first faults.
    assert len(groups) < len({plan_token(p[:1]) for p in plans})


def test_verdicts_from_workers_are_the_verdicts_of_one_process() -> None:
    flow = load_flow(EXAMPLES / "order_processing.py")
    workflow = flow.pick(None)
    base = build_baseline(Target(workflow, workflow.examples[0], db=flow.database))
    plans = [[f] for f in base.singles]
    plans += random_plans(base, 150, 3, random.Random(3), set())
    alone = [evaluate(base, plan) for plan in plans]
    base._memo = None  # a campaign of its own
    done: list[int] = []
    spread = evaluate_all(base, plans, 2, done.append)
    assert sum(done) == len(plans)
    assert spread == alone
    # Runs that ended alike share their verdict: the workers sent it once.
    assert len({id(v) for v in spread}) < len(plans)


def test_random_plans_leave_out_the_plans_already_chosen_and_repeat_none() -> None:
    flow = load_flow(EXAMPLES / "order_processing.py")
    workflow = flow.pick(None)
    base = build_baseline(Target(workflow, workflow.examples[0], db=flow.database))
    chosen = [[f] for f in base.singles[::2]]
    seen = {plan_token(p) for p in chosen}
    before = set(seen)
    plans = random_plans(base, 5_000, 3, random.Random(0), seen)
    tokens = [plan_token(p) for p in plans]
    assert seen == before  # read, not changed
    assert len(set(tokens)) == len(tokens)
    assert not seen & set(tokens)
    # Every other single is still drawn once the space is used up.
    assert {plan_token([f]) for f in base.singles[1::2]} <= set(tokens)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_campaign_leaves_the_collector_as_it_found_it(jobs: int) -> None:
    # A campaign keeps the process's objects out of the collector while it runs; a process
    # that froze its own (a server after loading) must find them still frozen afterwards.
    import gc

    flow = load_flow(EXAMPLES / "payment.py")
    workflow = flow.pick(None)
    base = build_baseline(Target(workflow, workflow.examples[0], db=flow.database))
    plans = [[f] for f in base.singles][:6]
    assert gc.get_freeze_count() == 0
    evaluate_all(base, plans, jobs, lambda n: None)
    assert gc.get_freeze_count() == 0  # ours released
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        assert theirs > 0
        evaluate_all(base, plans, jobs, lambda n: None)
        # Theirs kept (some may have been freed meanwhile; gc.unfreeze() would leave none).
        assert gc.get_freeze_count() > theirs // 2
    finally:
        gc.unfreeze()


def test_stop_ends_the_workers_campaign_and_leaves_the_plans_not_run_out() -> None:
    flow = load_flow(EXAMPLES / "order_processing.py")
    workflow = flow.pick(None)
    base = build_baseline(Target(workflow, workflow.examples[0], db=flow.database))
    plans = [[f] for f in base.singles]
    plans += random_plans(base, 3000, 3, random.Random(5), set())
    # Stopped from the start: no worker starts a plan.
    assert evaluate_all(base, plans[:20], 2, lambda n: None, stop=lambda: True) == [None] * 20
    done: list[int] = []
    # True once the first verdicts came back (a worker sends them after 0.1 s, when a
    # worker has a thousand plans or more left): the workers start no plan after that.
    spread = evaluate_all(base, plans, 2, done.append, stop=lambda: bool(done))
    ran = [i for i, v in enumerate(spread) if v is not None]
    assert 0 < len(ran) < len(plans)
    assert sum(done) == len(ran)
    base._memo = None
    assert all(spread[i] == evaluate(base, plans[i]) for i in ran)
