"""The SIGKILL loop of tests/reliability, for longer: many kills over five flows.

    python benchmarks/kill_loop.py [--kills N] [--budget SECONDS] [--seed S]

Forks a child per attempt that runs (or resumes) one instance on a SQLite store, kills it with
SIGKILL at a random point, and repeats until the instance finishes; then checks that the store
passes `PRAGMA integrity_check`, that no handler ran again after its checkpoint, and that the
output equals a crash-free run's. Prints kills, children and problems per flow; exit 1 on any
problem. Linux/macOS (fork).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability._killloop import run_many


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=2000)
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    results = run_many(budget_s=args.budget, min_kills=args.kills, seed=args.seed)
    totals: dict[str, list[int]] = {}
    problems = []
    for result in results:
        kills, children = totals.setdefault(result.flow, [0, 0])
        totals[result.flow] = [kills + result.kills, children + result.children]
        problems.extend(result.problems)
    for flow, (kills, children) in totals.items():
        print(f"{flow:10} kills {kills:6}  processes {children:6}")
    total = sum(kills for kills, _ in totals.values())
    print(f"total kills {total} in {time.monotonic() - started:.1f} s; problems: {len(problems)}")
    for problem in problems[:20]:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
