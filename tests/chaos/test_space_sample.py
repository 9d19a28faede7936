"""random_plans draws its picks without Random.randint and Random.sample (their checks cost
more than the draw), and must still draw exactly their numbers: a seed names the same plans
in every awf version and on every supported CPython."""

from __future__ import annotations

import random

import pytest

from awf_sim.chaos._space import _sample


@pytest.mark.parametrize("n", [1, 2, 3, 5, 14, 20, 21, 22, 23, 40, 113])
def test_the_same_picks_as_random_sample(n: int) -> None:
    for seed in range(40):
        ours, theirs = random.Random(seed), random.Random(seed)
        for _ in range(50):
            most = min(5, n)
            k = 1 + ours._randbelow(most)  # type: ignore[attr-defined]
            assert k == theirs.randint(1, most)
            assert _sample(ours._randbelow, range(n), n, k) == theirs.sample(range(n), k)  # type: ignore[attr-defined]
        assert ours.getstate() == theirs.getstate()


def test_a_used_up_space_ends_the_draw_with_every_plan_once() -> None:
    from awf_sim.chaos._space import random_plans

    class Base:
        def __init__(self) -> None:
            self.singles = [
                {"kind": "transient-error", "step": f"S.s{i}", "attempt": 1} for i in range(4)
            ]
            self.extra: list[dict[str, object]] = []
            self.order: dict[str, int] = {}

    class Counting(random.Random):
        draws = 0

        def _randbelow(self, n: int) -> int:
            Counting.draws += 1
            return super()._randbelow(n)  # type: ignore[misc,no-any-return]

    plans = random_plans(Base(), 10_000, 3, Counting(1), set())  # type: ignore[arg-type]
    # C(4,1) + C(4,2) + C(4,3) distinct picks, each once; then no more draws (it drew until
    # 20 times the 10,000 asked for before).
    assert len(plans) == 14
    assert len({tuple(f["step"] for f in p) for p in plans}) == 14
    assert Counting.draws < 1_000
