"""The DSL's Runtime over Cloudflare's Python `step` object, and `WorkflowEntrypoint.run`."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from awf_sim.dsl import NonRetryableError, StepCall, Workflow, WorkflowApi

from ._context import HandlerContext
from ._errors import _for_cloudflare, _into_workflow
from ._js import _jsonable, _settle, to_py


def _cf_config(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """A normalised DSL step config in Cloudflare's shape (durations as milliseconds)."""
    out: dict[str, Any] = {}
    retries = config.get("retries")
    if retries:
        out["retries"] = dict(retries)
    if config.get("timeout") is not None:
        out["timeout"] = config["timeout"]
    return out or None


class CloudflareRuntime:
    """The DSL's Runtime over Cloudflare's Python `step` object (one per `run`)."""

    __slots__ = ("_counts", "_env", "_event", "_step")

    def __init__(self, step: Any, event: Mapping[str, Any], env: Any) -> None:
        self._step = step
        self._event = event
        self._env = env
        self._counts: dict[str, int] = {}

    @property
    def instance_id(self) -> str:
        return str(self._event.get("instanceId", ""))

    @property
    def event(self) -> Mapping[str, Any]:
        return self._event

    def _count(self, name: str) -> int:
        # Cloudflare's cache key is (name, occurrence); counted in call order, as the engine.
        count = self._counts.get(name, 0) + 1
        self._counts[name] = count
        return count

    async def _do(
        self,
        name: str,
        config: Mapping[str, Any],
        body: Callable[[Any], Awaitable[Any]],
    ) -> Any:
        do = self._step.do(name, config=_cf_config(config))
        try:
            result = await _settle(do(body)())
        except Exception as exc:
            raise _into_workflow(exc) from None
        return to_py(result)

    def step(self, call: StepCall) -> Awaitable[Any]:
        count = self._count(call.name)
        instance_id = self.instance_id
        env = self._env

        async def body(ctx: Any) -> Any:
            info = to_py(ctx) or {}
            step = info.get("step") or {}
            handler_ctx = HandlerContext(
                instance_id=instance_id,
                step={
                    "name": call.name,
                    "path": call.label,
                    "count": step.get("count") or count,
                },
                attempt=info.get("attempt") or 1,
                env=env,
            )
            try:
                value = await call.invoke(handler_ctx)
            except NonRetryableError as exc:
                raise _for_cloudflare(exc) from None
            # Plain data: the SDK's python_to_rpc turns it into JavaScript, None as null.
            return _jsonable(value, f"result of {call.label}")

        return self._do(call.name, call.config, body)

    def do(self, name: str, fn: Callable[[], Any], config: Mapping[str, Any]) -> Awaitable[Any]:
        self._count(name)

        async def body(ctx: Any) -> Any:
            try:
                value = await _settle(fn())
            except NonRetryableError as exc:
                raise _for_cloudflare(exc) from None
            return _jsonable(value, f"result of {name}")

        return self._do(name, config, body)

    async def sleep(self, name: str, ms: int) -> None:
        await _settle(self._step.sleep(name, ms))

    async def sleep_until(self, name: str, epoch_ms: int) -> None:
        await _settle(self._step.sleep_until(name, epoch_ms))

    async def wait_for(self, name: str, type: str, timeout_ms: int) -> Any:
        try:
            event = to_py(await _settle(self._step.wait_for_event(name, type, timeout=timeout_ms)))
        except Exception as exc:
            raise _into_workflow(exc) from None
        return event.get("payload") if isinstance(event, Mapping) else event


def workflows_of(module: Any, names: Sequence[str]) -> dict[str, Workflow]:
    """The flow module's Workflow objects by name; a missing one is an error at import."""
    found = {
        value.name: value
        for value in vars(module).values()
        if isinstance(value, Workflow) and value.fn is not None
    }
    missing = [name for name in names if name not in found]
    if missing:
        raise ImportError(f"the flow module defines no workflow named {', '.join(missing)}")
    return {name: found[name] for name in names}


async def run_workflow(workflow: Workflow, env: Any, event: Any, step: Any) -> Any:
    """`WorkflowEntrypoint.run`: call the workflow function with a `wf` over `step`."""
    payload = _event(to_py(event) or {}, workflow.name)
    runtime = CloudflareRuntime(step, payload, env)
    params = payload.get("payload")
    model: Any = workflow.input_model
    if model is not None:
        params = model.model_validate(params)
    try:
        result = await _settle(workflow.call(WorkflowApi(runtime, workflow), params))
    except NonRetryableError as exc:
        raise _for_cloudflare(exc) from None
    # Plain data: the SDK's python_to_rpc turns it into JavaScript, None as null (to_js would
    # make it `undefined`, which the engine's JSON drops from the output).
    return _jsonable(result, "workflow output")


def _event(event: Mapping[str, Any], workflow: str) -> dict[str, Any]:
    """The triggering event as the simulator's `wf.event` has it: the engine's `timestamp`
    (a Date, which the SDK makes a naive UTC datetime) as an aware UTC datetime, and the
    `workflowName` that the engine's event lacks."""
    out = dict(event)
    stamp = out.get("timestamp")
    if isinstance(stamp, _dt.datetime) and stamp.tzinfo is None:
        out["timestamp"] = stamp.replace(tzinfo=_dt.UTC)
    elif isinstance(stamp, int | float) and not isinstance(stamp, bool):
        out["timestamp"] = _dt.datetime.fromtimestamp(stamp / 1000, tz=_dt.UTC)
    out.setdefault("workflowName", workflow)
    return out
