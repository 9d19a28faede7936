"""A step whose result does not fit the type its handler declares is named by the step's
path as the workflow wrote it (`result of Mailer.notify`), not by the handler function's
name, which says nothing when one function serves two domains."""

from __future__ import annotations

import dataclasses
from typing import Any

from awf_sim import Domain, Simulator, Workflow


@dataclasses.dataclass
class Receipt:
    sent: bool
    n: int


async def notify_email(user: Any, args: Any, ctx: Any) -> Receipt:
    return {"sent": True}  # type: ignore[return-value]  # n is missing


Mailer = Domain("RtMailer", {"notify": notify_email})
Pager = Domain("RtPager", {"page": notify_email})


@Workflow("rt-mailer", domains=[Mailer, Pager])
async def mailer(wf: Any, params: Any) -> Any:
    if params["via"] == "pager":
        return await wf.RtPager(params["user"]).page()
    return await wf.RtMailer(params["user"]).notify()


def _error(via: str) -> str:
    with Simulator() as sim:
        inst = sim.create(mailer, {"via": via, "user": "u-1"})
        sim.run()
        status = inst.status()
    assert status["status"] == "errored"
    return str(status["error"]["message"])


def test_the_error_names_the_step_the_workflow_awaited() -> None:
    assert "result of RtMailer.notify" in _error("mail")
    assert "result of RtPager.page" in _error("pager")
    assert "notify_email" not in _error("pager")
