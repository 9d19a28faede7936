"""The seam between the step executor and the code of a handler: handler runners.

The executor (`_executor`) decides *whether* and *when* an attempt runs, and what its outcome
means for the step; a runner decides *where* the handler's code runs. Two runners exist:

- `InProcessRunner` calls the handler on the simulator's loop. Its fast path is the reason
  the engine is cheap: a handler that never suspends is driven by one `send(None)` and costs
  no Task and no timeout timer; only one that suspends is raced against its timeout.
- `ForkRunner` runs each attempt in a forked child with CPU, memory and wall-time limits and
  no network (`_fork`), while the parent serves the child's `ctx.db`, `ctx.ai` and `ctx.http`.

Both build the handler's `ctx` here, fresh for every attempt, bound to the simulator's
services under the attempt's label. The label also goes into `current_step`, a context
variable, for as long as the handler runs: the database and the effect log record each write
and call under it, so steps that run at once (`asyncio.gather`) each own their effects.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import random
from collections.abc import Callable, Coroutine, Mapping
from types import CoroutineType as _Coroutine
from typing import Any, Protocol

from awf_sim._coro import finish
from awf_sim.dsl._cfduration import js_number_text, wait_ms
from awf_sim.dsl._errors import StepError
from awf_sim.engine._calls import CallbackStep, CpuBudgetExceeded, StepInfo, TimedOut
from awf_sim.engine._lifetime import Lifetime
from awf_sim.engine._limits import cpu_budget_of
from awf_sim.engine._services import Services
from awf_sim.sdk._context import HandlerContext, freeze_env, step_context
from awf_sim.sdk._effects import current_step

__all__ = ["ForkRunner", "HandlerRunner", "InProcessRunner", "Suspended"]

_new = object.__new__
_copy_context = contextvars.copy_context
_set_step = current_step.set


def _labelled(info: StepInfo) -> contextvars.Context:
    """A copy of the current context in which `current_step` names the attempt's step: the
    handler runs in it from its first line to its last, in one task or across a suspension
    (a Task created in it), so a context variable the handler sets and resets, as a tracing
    span does, meets the context it was set in. The task's own context is not touched: a
    set and reset there would leave it a new mapping of its own (136 bytes, kept by every
    waiting instance), where this copy is dropped with the attempt."""
    context = _copy_context()
    context.run(_set_step, f"{info.path}#{info.count}")
    return context


class HandlerRunner(Protocol):
    """Runs one attempt's handler and returns its value (or raises its error)."""

    def run(
        self, lt: Lifetime, call: Any, info: StepInfo, timeout_ms: int
    ) -> Coroutine[Any, Any, Any]: ...

    def start_ignoring(self, lt: Lifetime, call: Any, info: StepInfo) -> None:
        """Start the handler for an attempt that times out regardless (its effects happen,
        its result and any late error are ignored)."""


class Suspended:
    """A handler that awaited something real on its first step: its coroutine, what it
    yielded, and the context it runs in, to be driven on by a Task in that context."""

    __slots__ = ("context", "coro", "first")

    def __init__(
        self, coro: Coroutine[Any, Any, Any], first: Any, context: contextvars.Context
    ) -> None:
        self.coro = coro
        self.first = first
        self.context = context


def _first(context: contextvars.Context, label: str, fn: Callable[[Any], Any], arg: Any) -> Any:
    """In `context` (a fresh copy): label it, call the handler and run it up to its first
    suspension. Its value, or a `Suspended`. One `context.run` of this for the three steps
    each in a `context.run` of its own, as `_labelled` and its caller would do them."""
    _set_step(label)
    result = fn(arg)
    if type(result) is not _Coroutine:
        if not inspect.isawaitable(result):
            return result
        result = result if inspect.iscoroutine(result) else _as_coroutine(result)
    try:
        first = result.send(None)
    except StopIteration as stop:
        return stop.value
    return Suspended(result, first, context)


class InProcessRunner:
    """Handlers run on the simulator's loop; a suspended one races its timeout."""

    __slots__ = ("env", "services")

    def __init__(self, services: Services, env: Mapping[str, Any]) -> None:
        self.services = services
        self.env = freeze_env(env)  # once: no attempt can change what the next one sees

    def context(self, info: StepInfo) -> HandlerContext:
        return step_context(info, self.env, self.services)

    def start(self, lt: Lifetime, call: Any, info: StepInfo) -> Any:
        """Run the attempt's handler up to its first suspension, without a coroutine of our
        own: its value, or a `Suspended` for `finish` (most handlers never suspend, and every
        coroutine layer between a workflow and its handler costs each step)."""
        # `lt.executing += 1` written out (Lifetime.executing's setter): the property's get
        # and set are two Python calls, on every step, twice.
        lt._executing += 1
        tally = lt.tally
        if tally is not None:
            tally.executing += 1
        loop = lt.loop
        loop._iteration += 1  # the CPU budget is per attempt, not per run of steps
        loop.cpu_progress += 1
        context = _copy_context()  # labelled in `_first`, as `_labelled` labels one
        try:
            if type(call) is CallbackStep:
                return context.run(_first, context, f"{info.path}#{info.count}", call.fn, info)
            # step_context's four fields, set here: one Python call less on every step.
            ctx = _new(HandlerContext)
            ctx._info = info
            ctx.attempt = info.attempt
            ctx.env = self.env
            ctx._services = self.services
            return context.run(_first, context, f"{info.path}#{info.count}", call.invoke, ctx)
        except (SystemExit, KeyboardInterrupt, CpuBudgetExceeded) as exc:
            # The handler's, not the process's: the judge must outlive the code it judges.
            raise exit_error(exc, info.path) from None
        finally:
            lt._executing -= 1
            tally = lt.tally  # read again: the handler may have ended the lifetime
            if tally is not None:
                tally.executing -= 1

    async def finish(
        self, lt: Lifetime, suspended: Suspended, info: StepInfo, timeout_ms: int
    ) -> Any:
        """The rest of a handler `start` left suspended, raced against its timeout."""
        lt.executing += 1
        try:
            return await _race(lt, suspended, timeout_ms, info.path)
        except (SystemExit, KeyboardInterrupt, CpuBudgetExceeded) as exc:
            raise exit_error(exc, info.path) from None
        finally:
            lt.executing -= 1

    async def run(self, lt: Lifetime, call: Any, info: StepInfo, timeout_ms: int) -> Any:
        value = self.start(lt, call, info)
        if type(value) is Suspended:
            return await self.finish(lt, value, info, timeout_ms)
        return value

    def start_ignoring(self, lt: Lifetime, call: Any, info: StepInfo) -> None:
        # An attempt as in `start`: its CPU budget starts here. Without this the CPU the body
        # used since the last progress counts against it, and the no-progress rule of the
        # watch (`_limits`) blames the body's task for a handler that runs away here.
        loop = lt.loop
        loop._iteration += 1
        loop.cpu_progress += 1
        context = _labelled(info)
        run = context.run
        try:
            if isinstance(call, CallbackStep):
                result = run(call.fn, info)
            else:
                result = run(call.invoke, self.context(info))
            if inspect.isawaitable(result):
                coro = result if inspect.iscoroutine(result) else _as_coroutine(result)
                try:
                    first = run(coro.send, None)
                except StopIteration:
                    pass
                else:
                    task = lt.spawn(_contained(coro, first, info.path), context)
                    task.add_done_callback(_consume_exception)
        # The timeout wins the race; a late failure (even a sys.exit) is ignored like a result.
        except (Exception, SystemExit, KeyboardInterrupt, CpuBudgetExceeded):
            pass


class ForkRunner:
    """Each attempt in a forked process with CPU, memory and wall-time limits and no network;
    virtual time stands still while it runs (the loop waits for the thread). Callbacks of
    Cloudflare's Python step API, and attempts that time out regardless, run in-process."""

    __slots__ = ("inner", "limits", "seed", "wall_ms")

    def __init__(
        self, inner: InProcessRunner, limits: Any, seed: int, wall_ms: Callable[[], int]
    ) -> None:
        self.inner = inner
        self.limits = limits
        self.seed = seed
        self.wall_ms = wall_ms

    async def run(self, lt: Lifetime, call: Any, info: StepInfo, timeout_ms: int) -> Any:
        if isinstance(call, CallbackStep):
            return await self.inner.run(lt, call, info, timeout_ms)
        from awf_sim.engine._fork import Limits, run_isolated  # imports httpx: on first use

        lt.executing += 1
        try:
            ctx = self.inner.context(info)
            ctx.db  # noqa: B018 - opened here so the child's calls reach this database
            limits = self.limits if self.limits is not None else Limits()
            # The child gets its own simulation scope: virtual time, and randomness derived
            # from the seed and the step, so an isolated run is as reproducible as any other.
            child_seed = f"{self.seed}:{lt.iid}:{info.name}:{info.count}:{info.attempt}"
            wall_ms = self.wall_ms()

            def scope() -> Any:
                from awf_sim.engine._ambient import simulation_scope  # freezegun: on first use

                return simulation_scope(lambda: wall_ms, random.Random(child_seed))

            def serve() -> Any:
                from awf_sim.engine._ambient import simulation_scope

                # On the child's virtual clock too, so that SQL's 'now' in ctx.db is the
                # instant the child sees. Handing the scope the global generator itself
                # leaves `random` alone (the loop's thread owns it).
                with simulation_scope(lambda: wall_ms, random.random.__self__):  # type: ignore[attr-defined]
                    return run_isolated(call.invoke, ctx, limits, scope=scope)

            # The parent serves the child's ctx.db/ai/http on the executor's thread, which
            # does not inherit this task's context: hand it one that names this step.
            return await lt.loop.run_in_executor(None, _labelled(info).run, serve)
        finally:
            lt.executing -= 1

    def start_ignoring(self, lt: Lifetime, call: Any, info: StepInfo) -> None:
        self.inner.start_ignoring(lt, call, info)


async def _contained(coro: Coroutine[Any, Any, Any], first: Any, path: str) -> Any:
    """Finish a suspended handler on a Task; asyncio lets a Task's SystemExit and
    KeyboardInterrupt escape the loop, so they become the step's error here."""
    try:
        return await finish(coro, first)
    except (SystemExit, KeyboardInterrupt, CpuBudgetExceeded) as exc:
        raise exit_error(exc, path) from None
    except asyncio.CancelledError as exc:
        budget = cpu_budget_of(exc)
        if budget is None:
            raise
        raise exit_error(CpuBudgetExceeded(budget), path) from None


def exit_error(exc: BaseException, path: str) -> StepError:
    """The error of a step whose handler tried to end the process, or ran away."""
    if isinstance(exc, CpuBudgetExceeded):
        return StepError(
            f"the handler of {path} used more than {exc.budget_ms} ms of CPU time in one "
            "attempt (an endless loop, or a coroutine that spins on `await asyncio.sleep(0)`?); "
            "Cloudflare stops such an invocation. "
            "Raise the limit with Simulator(cpu_ms=...) or awf-sim --cpu-ms",
            "CpuLimitExceeded",
        )
    if isinstance(exc, SystemExit):
        what = f"called sys.exit({exc.code!r})" if exc.code is not None else "called sys.exit()"
    else:
        what = "raised KeyboardInterrupt"
    return StepError(
        f"the handler of {path} {what}: a step cannot end the process that runs it",
        type(exc).__name__,
    )


async def _race(lt: Lifetime, suspended: Suspended, timeout_ms: int, path: str) -> Any:
    loop = lt.loop
    # Gathered steps each go on in a task of their own, in their own labelled context.
    task = lt.spawn(_contained(suspended.coro, suspended.first, path), suspended.context)
    task.add_done_callback(_consume_exception)
    waiter: asyncio.Future[None] = loop.create_future()

    def settle(_t: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    def expire() -> None:
        if not waiter.done():
            waiter.set_exception(TimedOut())

    task.add_done_callback(settle)
    handle = loop.call_at((loop.now_ms + wait_ms(timeout_ms)) / 1000, expire)
    lt.timers.add(handle)
    try:
        await waiter
    except TimedOut:
        # The callback is not killed; its late result is ignored.
        raise StepError(
            f"Execution timed out after {js_number_text(timeout_ms)}ms", "WorkflowTimeoutError"
        ) from None
    finally:
        handle.cancel()
        lt.timers.discard(handle)
    return task.result()


def _consume_exception(task: asyncio.Task[Any]) -> None:
    # A handler that fails after its step timed out: nobody awaits it, so mark it retrieved.
    if not task.cancelled():
        task.exception()


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable
