"""Whose code a blocked thread runs (`_blocked.blocked_where`), told from inside a handler:
the block watcher reads the same stack from its own thread when the handler blocks."""

from __future__ import annotations

import sys
from typing import Any

from awf_sim import Domain, Workflow
from awf_sim.engine._blocked import blocked_where
from awf_sim.testing import create_test_workflow

SEEN: list[str | None] = []


async def charge(context: Any, args: Any, ctx: Any) -> int:
    SEEN.append(blocked_where(sys._getframe()))
    return 1


Pay = Domain("WhereBlockPay", {"charge": charge})


@Workflow("where-block-pay", domains=[Pay])
async def pay(wf: Any, params: Any) -> Any:
    try:
        return await wf.WhereBlockPay({}).charge()
    except Exception as exc:  # the forced timeout
        return str(exc)


def test_a_handler_started_by_a_forced_timeout_is_named_as_the_handler() -> None:
    # A forced timeout starts the handler and times the attempt out regardless; a handler
    # that blocked there was named "the workflow body".
    SEEN.clear()
    wf = create_test_workflow(pay)
    wf.modifier.force_step_timeout("WhereBlockPay.charge", times=1)
    wf.run({})
    assert len(SEEN) >= 2
    for where in SEEN:
        assert where is not None
        assert where.startswith("the handler of WhereBlockPay.charge (at "), where
