"""`Instance`: the handle on one workflow instance that `Simulator.create` returns. It asks
the Simulator's instance commands (`_lifecycle`) for everything it reports or does."""

from __future__ import annotations

from typing import Any, Generic

from awf_sim.dsl._workflow import Out
from awf_sim.engine._lifecycle import InstanceLifecycle, RestartFrom
from awf_sim.engine._timeline import TimelineEntry

__all__ = ["Instance"]


class Instance(Generic[Out]):
    """A handle on one workflow instance of a Simulator. `Simulator.create` of a
    `Workflow[In, Out]` gives an `Instance[Out]`, whose `output()` is typed `Out | None`."""

    __slots__ = ("_sim", "id")

    def __init__(self, sim: InstanceLifecycle, iid: str) -> None:
        self._sim = sim
        self.id = iid

    def status(self) -> dict[str, Any]:
        """{"status", "output", "error": {"name", "message"} | None} as Cloudflare reports it."""
        return self._sim._status(self.id)

    def output(self) -> Out | None:
        """The output of the completed instance as its workflow declares it: a dataclass or
        a pydantic model rebuilt from the JSON (`status()["output"]`), anything else as JSON;
        None until it completes."""
        status = self._sim._status(self.id)
        if status["status"] != "complete":
            return None
        revive = getattr(self._sim._program(self.workflow), "revive_output", None)
        value: Out = status["output"] if revive is None else revive(status["output"])
        return value

    @property
    def workflow(self) -> str:
        """The name of the workflow this is an instance of."""
        name: str = self._sim._meta(self.id)["workflow"]
        return name

    @property
    def timeline(self) -> list[TimelineEntry]:
        """Every step start, attempt, checkpoint, sleep, event, crash and recovery, in order."""
        return self._sim._store.timeline(self.id)  # new dicts, built from the stored rows

    def step_outputs(self) -> list[Any]:
        """Step results and received event payloads in the order they completed (cached
        replays add nothing): what Miniflare's status() reports as __LOCAL_DEV_STEP_OUTPUTS."""
        return self._sim._step_outputs(self.id)

    def step_results(self) -> list[dict[str, Any]]:
        """Each checkpointed step result, in the order they completed: {"path", "name",
        "count", "value"} (path dotted, name Cloudflare's, count its occurrence)."""
        return self._sim._step_results(self.id)

    def send_event(self, type: str, payload: Any = None) -> None:
        self._sim._send_event(self.id, type, payload)

    def pause(self) -> None:
        self._sim._pause(self.id)

    def resume(self) -> None:
        self._sim._resume(self.id)

    def terminate(self) -> None:
        self._sim._terminate(self.id)

    def restart(self, from_: RestartFrom | None = None) -> None:
        """Run the instance again. With `from_` (Cloudflare's `restart({from})`,
        {"name", "count"?, "type"?}), the steps started before that step replay from storage
        and it and every step started after it run anew; a step the instance never started
        raises InstanceError "(instance.cannot_restart) Step "NAME" not found in execution
        history", and the instance carries on as it was."""
        self._sim._restart(self.id, from_)

    def __repr__(self) -> str:
        return f"<Instance {self.id} {self.status()['status']}>"
