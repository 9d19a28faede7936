"""The step executor: what happens between `await wf.Inventory(p).check()` and its value.

For one `do` call it checks Cloudflare's limits in Cloudflare's order, returns a checkpointed
value (or raises a checkpointed failure) on replay, and otherwise runs attempts: the attempt
count is stored before the handler runs and the result after (at-least-once), failures are
retried with the configured backoff, a retry wait survives crashes, a NonRetryableError is
raised at once and not checkpointed, and exhausted retries checkpoint the last error.

Where the handler's code runs is the runner's business (`_runners`); the executor only hands
it the attempt. The hooks (test modifiers, fault plans) are asked at each point where
Cloudflare's behaviour can be bent, and their actions are carried out here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from awf_sim.dsl._config import ResolvedConfig, merge_config
from awf_sim.dsl._errors import (
    NonRetryableError,
    SerializationError,
    StepError,
    WorkflowFatalError,
)
from awf_sim.dsl._identity import (
    ENCODE_ERRORS,
    MAX_PAYLOAD_BYTES,
    MAX_STEP_NAME,
    chunks_ordered,
    loads,
    result_error,
    scan_once,
    utf8_size,
    utf16_len,
)
from awf_sim.engine._calls import (
    Abandoned,
    StepInfo,
    error_of,
    replayed_error,
    retry_delay,
    stack_of,
)
from awf_sim.engine._hooks import (
    INVALID_CONFIG,
    Action,
    ForceTimeout,
    MockError,
    MockResult,
)
from awf_sim.engine._lifetime import Lifetime
from awf_sim.engine._records import StepRecord
from awf_sim.engine._runners import HandlerRunner, InProcessRunner, Suspended
from awf_sim.engine._timeline import Row, shape

__all__ = ["StepExecutor"]

_INTERNAL_ERROR = {
    "name": "WorkflowInternalError",
    "message": "Attempt failed due to internal workflows error",
}
_CONTROL = re.compile(r"[\x00-\x1f]")
# The detail keys of the rows the executor writes (`_timeline.Row`).
_CONFIG = shape("config")
_COUNT = shape("count")


def _failure(
    lt: Lifetime,
    path: str,
    name: str,
    attempt: int,
    err: dict[str, str],
    retry_in_ms: int | None,
    stack: str | None,
) -> Row:
    """An attempt-failure entry: its error, the retry delay when retried, the user's stack."""
    if retry_in_ms is None:
        if stack is None:
            return lt.entry("attempt-failure", path, name, attempt, error=err)
        return lt.entry("attempt-failure", path, name, attempt, error=err, stack=stack)
    if stack is None:
        return lt.entry("attempt-failure", path, name, attempt, error=err, retry_in_ms=retry_in_ms)
    return lt.entry(
        "attempt-failure", path, name, attempt, error=err, retry_in_ms=retry_in_ms, stack=stack
    )


_tuple_new = tuple.__new__
_MAX_CHARS = MAX_PAYLOAD_BYTES // 4  # a text this short is within the limit in any encoding


def _non_retryable(err: Mapping[str, str]) -> bool:
    """Cloudflare's test: `error.name === "NonRetryableError" ||
    error.message.startsWith("NonRetryableError")` (the second because RPC puts a class's name
    before its message), so any error whose name or message says so is not retried."""
    return err["name"] == "NonRetryableError" or err["message"].startswith("NonRetryableError")


class StepExecutor:
    """Runs `do` steps for every lifetime of one simulator."""

    __slots__ = (
        "clone_engine_errors",
        "default_config",
        "defaults",
        "inproc",
        "runner",
        "step_limit",
    )

    def __init__(self, runner: HandlerRunner, defaults: ResolvedConfig, step_limit: int) -> None:
        self.runner = runner
        # The in-process runner's synchronous first half: an attempt that never suspends
        # then costs no coroutine of the runner's (see InProcessRunner.start).
        self.inproc = runner if isinstance(runner, InProcessRunner) else None
        self.defaults = defaults
        # What a step without a config of its own resolves to: one dict for all of them (a
        # record is never changed in place), not two new ones per step kept by every record.
        self.default_config = merge_config(defaults, {})
        self.step_limit = step_limit
        self.clone_engine_errors = False  # profile "local": see replayed_error

    async def do(
        self,
        lt: Lifetime,
        name: str,
        path: str,
        user_config: Mapping[str, Any],
        call: Any,
    ) -> Any:
        if not lt.alive:
            raise Abandoned
        if lt.pause_gate is not None:
            await lt.pause_gate  # new steps wait while a pause is pending
        # Order of checks as in Cloudflare: step limit, then name, then config. Each throws a
        # WorkflowFatalError into run(), which may catch it (SEMANTICS §1.1, §2.1).
        lt.step_calls += 1
        if lt.step_calls > self.step_limit:
            raise WorkflowFatalError(
                f"The limit of {self.step_limit} steps has been reached. This limit can be "
                "changed in your worker configuration."
            )
        # isprintable() first: it is false for every control character, and much cheaper than
        # the search that names the step-name rule.
        if (len(name) if name.isascii() else utf16_len(name)) > MAX_STEP_NAME or (
            not name.isprintable() and _CONTROL.search(name) is not None
        ):
            raise WorkflowFatalError(
                f'Step name "{name}" exceeds max length ({MAX_STEP_NAME} chars) or invalid '
                "characters found"
            )
        if user_config is INVALID_CONFIG:
            raise WorkflowFatalError(
                f'Step config for "{name}" is in a invalid format. See '
                "https://developers.cloudflare.com/workflows/build/sleeping-and-retrying/"
            )
        hooks = lt.hooks
        if hooks is None:  # lt.begin("do", ...) without its call: nothing to tell the hooks
            count = lt.count(name)
            key = f"do:{name}#{count}"
            ref = None
        else:
            count, key, ref = lt.begin("do", name, path)
        rec = lt.store.result_or_step(lt.iid, key)
        if isinstance(rec, str):  # done: a replay returns the checkpointed value
            return loads(rec)
        if rec is not None and rec["state"] == "failed":
            raise replayed_error(rec["error"], self.clone_engine_errors)
        # From here on the step executes. Kept in this one coroutine (not a helper awaited
        # from here): every step pays for each coroutine layer between the workflow and its
        # handler.
        inproc = self.inproc
        started: list[Row] = []  # step-start, committed with the first attempt
        if rec is None:
            if hooks is not None and ref is not None:
                lt.act(hooks.before_step(lt.iid, ref), ref, None)
            # The resolved config is persisted at the first execution and reused on replay.
            config = (
                merge_config(self.defaults, user_config) if user_config else self.default_config
            )
            rec = {
                "kind": "do",
                "name": name,
                "path": path,
                "count": count,
                "config": config,
                "attempts": 1,  # the first attempt's start is this record's first commit
                "state": "running",
                "retry_at": None,
            }
            # The resolved config rides on step-start: what a reader of the timeline (a
            # person, chaos's retry-policy check) needs to judge the attempts that follow.
            started.append((_CONFIG, lt.loop._now_ms, "step-start", path, name, None, config))
        config = rec["config"]
        retries = config["retries"]
        limit = retries["limit"]
        attempt: int = rec["attempts"]
        if started:  # a new step: its record is not stored yet, so it is the first attempt's
            attempt = 0
        elif rec["retry_at"] is not None:
            await lt.wait_until(rec["retry_at"])  # a retry wait survives crashes
        elif attempt > 0:
            # At-least-once: the attempt started (its count was stored) but no result was;
            # the crashed attempt used up one unit of the retry budget.
            lt.commit(
                timeline=[lt.entry("attempt-failure", path, name, attempt, error=_INTERNAL_ERROR)]
            )
            if attempt > limit:
                return self._fail_step(lt, key, rec, path, name, attempt, _INTERNAL_ERROR)
        while True:
            attempt += 1
            if attempt > 1 or not started:
                rec = {**rec, "attempts": attempt, "retry_at": None}
            # The attempt count is stored before the callback runs (at-least-once); on the
            # first attempt in the same commit as the step's start, nothing runs between them.
            # Timeline entries on the success path are tuple displays (`_timeline.Row`), not
            # lt.entry() calls: four per step, and the call with its **details costs more.
            started.append(((), lt.loop._now_ms, "attempt-start", path, name, attempt))
            if not lt.alive:
                raise Abandoned  # as lt.commit: nothing is written after a crash point
            lt.store.commit_step(lt.iid, key, rec, started, False)
            started = []
            info = _tuple_new(StepInfo, (lt.iid, name, path, count, attempt, config))
            action = None
            if hooks is not None and ref is not None:
                action = lt.act(hooks.before_attempt(lt.iid, ref, attempt), ref, attempt)
            try:
                if action is None:
                    if inproc is None:
                        value = await self.runner.run(lt, call, info, config["timeout"])
                    else:
                        value = inproc.start(lt, call, info)
                        if type(value) is Suspended:
                            value = await inproc.finish(lt, value, info, config["timeout"])
                else:
                    value = await self._attempt_with(lt, call, info, config["timeout"], action)
                # dump_result's encoder, called here: the error's root is only built for
                # an error.
                try:
                    result = "".join(chunks_ordered(value, 0))
                except ENCODE_ERRORS as exc:
                    raise result_error(value, f"result of {path}", exc) from None
                if len(result) > _MAX_CHARS and utf8_size(result) > MAX_PAYLOAD_BYTES:
                    # Thrown inside the attempt on Cloudflare, so it is retried like any error.
                    raise StepError(
                        f"Step {name}-{count} output is too large. Maximum allowed size is 1MiB.",
                        "WorkflowInternalError",
                    )
                if hooks is not None and ref is not None:
                    lt.act(hooks.after_effect(lt.iid, ref, attempt), ref, attempt)
            except Abandoned:
                raise
            except SerializationError as exc:
                raise lt.owner.end_fatal(
                    lt,
                    f'The execution of the Workflow instance was terminated, as the step "{name}" '
                    f"returned a value which is not serialisable ({exc})",
                ) from None
            except Exception as exc:
                err = error_of(exc)
                stack = stack_of(exc)
                if isinstance(exc, NonRetryableError) or _non_retryable(err):
                    # Not persisted (as in Cloudflare's local engine): a replay runs the step
                    # again.
                    lt.commit(
                        steps={key: None},
                        timeline=[
                            _failure(lt, path, name, attempt, err, None, stack),
                            lt.entry("step-failure", path, name, attempt, error=err),
                        ],
                    )
                    raise NonRetryableError(err["message"], err["name"]) from None
                if attempt <= limit:  # `limit` counts retries: attempts = limit + 1
                    delay = retry_delay(retries, attempt)
                    if hooks is not None and ref is not None:
                        delay = hooks.retry_delay(lt.iid, ref, attempt, delay)
                    retry_at = lt.loop.now_ms + delay
                    rec = {**rec, "retry_at": retry_at}
                    failure = _failure(lt, path, name, attempt, err, delay, stack)
                    lt.commit(steps={key: rec}, timeline=[failure])
                    lt.pause_point()
                    if delay:
                        await lt.wait_until(retry_at)
                    if lt.pause_gate is not None:
                        # As a sleep's: a retry wait that ends while a pause is pending starts
                        # no attempt; the replay after resume does.
                        await lt.pause_gate
                    continue
                lt.commit(timeline=[_failure(lt, path, name, attempt, err, None, stack)])
                lt.pause_point()
                return self._fail_step(lt, key, rec, path, name, attempt, err)
            else:
                now = lt.loop._now_ms
                # Deferred: written with the next commit, which comes before any handler runs
                # (the next attempt's start) or the run ends. Lost in a crash, the step runs
                # again, as after a crash inside the handler; never run again once stored.
                if not lt.alive:
                    raise Abandoned  # as lt.commit: nothing is written after a crash point
                lt.store.commit_step(
                    lt.iid,
                    key,
                    {**rec, "state": "done", "value": result},
                    [
                        ((), now, "attempt-success", path, name, attempt),
                        (_COUNT, now, "checkpoint", path, name, attempt, count),
                    ],
                    True,
                )
                if hooks is not None and ref is not None:
                    lt.act(hooks.after_checkpoint(lt.iid, ref, attempt), ref, attempt)
                if lt.pause_gate is not None:
                    lt.pause_point()
                # loads(result) without its call: the text is the encoder's own, one whole
                # valid value, so the checks loads makes for other texts cannot fail here.
                return scan_once(result, 0)[0]

    async def _attempt_with(
        self, lt: Lifetime, call: Any, info: StepInfo, timeout_ms: int, action: Action
    ) -> Any:
        """An attempt a hook changed: a mocked result or error, or a forced timeout."""
        if isinstance(action, MockResult):
            return action.value  # the handler does not run; attempt and checkpoint happen
        if isinstance(action, MockError):
            if action.name == "NonRetryableError":
                raise NonRetryableError(action.message)
            raise StepError(action.message, action.name)
        if isinstance(action, ForceTimeout):
            # The handler starts (its effects happen) but the attempt times out regardless.
            lt.executing += 1
            try:
                started = lt.loop.now_ms
                self.runner.start_ignoring(lt, call, info)
                ms = timeout_ms if action.after_config else 0
                if ms:
                    await lt.wait_until(started + ms)
                raise StepError(f"Execution timed out after {ms}ms", "WorkflowTimeoutError")
            finally:
                lt.executing -= 1
        return await self.runner.run(lt, call, info, timeout_ms)

    def _fail_step(
        self,
        lt: Lifetime,
        key: str,
        rec: StepRecord,
        path: str,
        name: str,
        attempt: int,
        err: dict[str, str],
    ) -> Any:
        # The final error is persisted: a replay raises it again without running the step.
        lt.commit(
            steps={key: {**rec, "state": "failed", "error": err, "retry_at": None}},
            timeline=[lt.entry("step-failure", path, name, attempt, error=err)],
        )
        raise StepError(err["message"], err["name"])
