"""Typed values across replays, checked as part of replay-equivalence.

A workflow is handed each step's result as a Python value. On its first run and on every
replay after a crash that value must be of the same type: a `Stock` dataclass in the
fault-free run and a dict after a replay breaks `stock.quantity` only in production, after a
crash. The DSL records the type of every result it hands a workflow while `watch_types()` is
on (awf_sim.dsl._values); here, each lifetime of a faulted run is compared with the
fault-free run, step by step (name and occurrence).
"""

from __future__ import annotations

from awf_sim.chaos._diff import MAX_LINES, workflow_site
from awf_sim.chaos._model import Baseline, Observation, Violation

__all__ = ["type_changes"]

Seen = list[tuple[int, str, str]]


def _by_lifetime(seen: Seen) -> list[dict[tuple[str, int], str]]:
    """Per lifetime (the workflow function's runs, in order): (step name, occurrence) ->
    the type name the workflow received."""
    lifetimes: dict[int, dict[tuple[str, int], str]] = {}
    counts: dict[tuple[int, str], int] = {}
    for token, name, kind in seen:
        k = counts[(token, name)] = counts.get((token, name), 0) + 1
        lifetimes.setdefault(token, {})[(name, k)] = kind
    return list(lifetimes.values())


def type_changes(base: Baseline, obs: Observation) -> list[Violation]:
    """A step result whose type differs from the fault-free run's in some lifetime."""
    if not base.obs.value_types or not obs.value_types:
        return []
    expected: dict[tuple[str, int], str] | None = base._derived.get("types")
    if expected is None:
        expected = base._derived["types"] = {}
        for lifetime in _by_lifetime(base.obs.value_types):
            expected.update(lifetime)
    diff: list[str] = []
    first: str | None = None
    for lifetime in _by_lifetime(obs.value_types):
        for (name, k), kind in lifetime.items():
            want = expected.get((name, k))
            if want is not None and want != kind:
                path = name.split("@", 1)[0]
                first = first or path
                line = f"{path} (call {k}): {want} in the fault-free run, {kind} under the faults"
                if line not in diff:
                    diff.append(line)
    if not diff:
        return []
    hint = (
        "A replay hands the workflow the step's checkpoint, rebuilt as the type the handler "
        "declares it returns (`-> Stock`): annotate the handler's result, and do not keep a "
        "step's live value outside the checkpoint (module state, a cache)."
    )
    return [
        Violation(
            "replay-equivalence",
            f"types of {first}",
            "a step result changed type across a replay",
            diff[:MAX_LINES],
            hint,
            workflow_site(base.workflow),
        )
    ]
