"""`wf.modifier`: Cloudflare's test modifier (`cloudflare:test`) on the engine's Hooks seam.

The rules follow Cloudflare's local engine (workers-sdk workflows-shared modifier.ts and the
step loop in context.ts):

- a mocked step's handler does not run, but its attempt and checkpoint still happen;
- per attempt, a mocked error is checked first, then a forced timeout, then a mocked result,
  so "fail N times, then succeed" is `mock_step_error(step, e, times=N)` followed by
  `mock_step_result(step, value)`;
- `times=N` claims the next N attempt numbers of that step, on a counter that starts at 1 and
  is shared by `mock_step_error` and `force_step_timeout`; without `times`, every attempt;
- mocking a step's result twice, or mocking an error or a timeout after its result, is an error
  with Cloudflare's message.

Selectors (see `awf_sim.engine._selectors`) are matched per step call; when several match one
call, the most specific wins (an indexed selector over a plain one, an exact name over a glob,
then the one registered first).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._identity import MAX_PAYLOAD_BYTES, canonical, dump_result, utf8_size
from awf_sim.engine._hooks import (
    Action,
    Control,
    ForceTimeout,
    Hooks,
    HookView,
    MockError,
    MockResult,
    SendEvent,
    StepRef,
)
from awf_sim.engine._selectors import Selector, StepSelector, parse_selector
from awf_sim.errors import ModifierError
from awf_sim.testing._failures import user_facing

__all__ = ["ErrorSpec", "Modifier", "ModifierError", "unwaited_hint"]

# What mock_step_error takes: an exception (or its class), a message, or {"name", "message"}.
ErrorSpec = BaseException | type[BaseException] | str | Mapping[str, str]

_KIND_WORD = {"do": "step", "sleep": "sleep", "wait": "event wait"}


def _a(kind: str) -> str:
    word = _KIND_WORD[kind]
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


@dataclass(eq=False)
class _Rule:
    """Everything registered for one (kind, selector): Cloudflare keys it by (name, index)."""

    kind: str
    selector: StepSelector
    order: int
    uses: list[str] = field(default_factory=list)
    has_result: bool = False
    result: Any = None
    error: tuple[str, str] | None = None  # on every attempt
    attempt_errors: dict[int, tuple[str, str]] = field(default_factory=dict)
    timeout: bool = False  # on every attempt
    attempt_timeouts: set[int] = field(default_factory=set)
    next_attempt: int = 1  # Cloudflare's failure-index counter, shared by errors and timeouts
    no_retry_delay: bool = False
    no_sleep: bool = False
    event_timeout: bool = False
    matched: bool = False
    preceded: int = 0  # matching calls made before it was recorded (mid-run), most per lifetime

    @property
    def mocks_attempts(self) -> bool:
        return bool(
            self.has_result
            or self.error
            or self.attempt_errors
            or self.timeout
            or self.attempt_timeouts
        )

    def sort_key(self) -> tuple[int, int, int]:
        return (*self.selector.specificity, self.order)


@dataclass
class _Lifetime:
    counts: dict[int, int] = field(default_factory=dict)  # rule order -> matching calls so far
    selected: dict[tuple[str, int], list[_Rule]] = field(default_factory=dict)  # (kind, seq)
    refs: list[StepRef] = field(default_factory=list)  # its calls so far, for later rules


def _error_pair(error: Any, method: str) -> tuple[str, str]:
    """{name, message} of what `mock_step_error` was given, as Cloudflare serialises it."""
    if isinstance(error, str):
        return ("Error", error)
    if isinstance(error, BaseException):
        name = getattr(error, "name", None)
        message = getattr(error, "message", None)
        if isinstance(name, str) and isinstance(message, str):
            return (name, message)
        return (type(error).__name__, str(error))
    if isinstance(error, type) and issubclass(error, BaseException):
        return (error.__name__, "")
    if isinstance(error, Mapping):
        name, message = error.get("name", "Error"), error.get("message")
        if isinstance(name, str) and isinstance(message, str):
            return (name, message)
    raise DefinitionError(
        f"{method}: error must be an exception, a message string or "
        f"{{'name': ..., 'message': ...}}, got {error!r}"
    )


def _times(times: Any, method: str) -> int | None:
    if times is None:
        return None
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        # Cloudflare treats a falsy `times` (0) as "every attempt"; that is never what a test
        # means, so it is refused here.
        raise DefinitionError(
            f"{method}: times must be a positive whole number of attempts (or None for every "
            f"attempt), got {times!r}"
        )
    return times


def _selectors(steps: Any, method: str) -> list[StepSelector]:
    if isinstance(steps, (str, Mapping)):
        return [parse_selector(steps, method=method)]
    if not isinstance(steps, Iterable):
        raise DefinitionError(
            f"{method}: steps must be a list of selectors (or one selector), got {steps!r}"
        )
    return [parse_selector(s, method=method) for s in steps]


def unwaited_hint(type_: str, waits: Mapping[str, str]) -> str:
    """Why an event of `type_` reached none of the run's waits (name -> the event type it
    waited for): ` (did you mean 'card-added'?)`, a wait's name given for its type, the types
    waited for, or that no wait was called."""
    waited = list(dict.fromkeys(waits.values()))
    close = difflib.get_close_matches(type_, waited, n=1, cutoff=0.6)
    if type_ in waits:
        return (
            f" ({type_!r} is the name of an event wait; an event reaches a wait by its type: "
            f"{', '.join(map(repr, waited))})"
        )
    if close:
        return f" (did you mean {close[0]!r}?)"
    if waited:
        return f" (its waits were for: {', '.join(map(repr, waited))})"
    return " (no event wait was called)"


class Modifier(Hooks):
    """The test modifier: pass it as `Simulator(hooks=...)`, or use `wf.modifier` of a test
    workflow. Every method also has Cloudflare's camelCase name (`mockStepResult`, ...).

    Call the methods before the instance starts: like Cloudflare's `modifyAll`, what is
    recorded applies to every instance the simulator creates afterwards. Recorded mid-run
    (after `start()`), it applies to the calls still to come; an `index` still counts the
    calls from the start of the instance's lifetime.
    """

    def __init__(self) -> None:
        self._rules: dict[tuple[str, StepSelector], _Rule] = {}
        self._all_sleeps = False
        self._all_retry_delays = False
        self._events: list[tuple[str, Any]] = []
        self._event_uses: dict[str, list[str]] = {}  # type -> the test's calls that sent it
        self._instances: list[str] = []  # instances started under this modifier
        self._pending: list[Control] = []
        self._lifetimes: dict[str, _Lifetime] = {}
        self.calls: list[tuple[str, StepRef]] = []
        """Every step, sleep and wait call the engine reported: (instance id, StepRef)."""

    # -- the public API (Cloudflare's WorkflowInstanceModifier) ----------------------------
    @user_facing
    def disable_sleeps(self, steps: Selector | Iterable[Selector] | None = None) -> None:
        """Sleeps resolve at once: all of them, or only those selected (by sleep name)."""
        if steps is None:
            self._all_sleeps = True
            return
        for sel in _selectors(steps, "disable_sleeps"):
            self._rule("sleep", sel, "disable_sleeps").no_sleep = True

    @user_facing
    def disable_retry_delays(self, steps: Selector | Iterable[Selector] | None = None) -> None:
        """Retry waits become 0 (all attempts still run): for every step, or those selected."""
        if steps is None:
            self._all_retry_delays = True
            return
        for sel in _selectors(steps, "disable_retry_delays"):
            self._rule("do", sel, "disable_retry_delays").no_retry_delay = True

    @user_facing
    def mock_step_result(self, step: Selector, value: Any) -> None:
        """The step's attempts succeed with `value` (a JSON round-trip); the handler does not
        run, its attempt and checkpoint still happen."""
        sel = parse_selector(step, method="mock_step_result")
        stored = json.loads(dump_result(value, root=f"mock_step_result({sel}) value"))
        rule = self._rule("do", sel, "mock_step_result")
        rule.has_result = True
        rule.result = stored

    @user_facing
    def mock_step_error(self, step: Selector, error: ErrorSpec, times: int | None = None) -> None:
        """The step's attempts throw `error` (its name and message): every attempt, or the
        next `times` attempts. A NonRetryableError is not retried."""
        sel = parse_selector(step, method="mock_step_error")
        pair = _error_pair(error, "mock_step_error")
        n = _times(times, "mock_step_error")
        rule = self._rule("do", sel, "mock_step_error")
        if n is None:
            rule.error = pair
        else:
            for attempt in self._claim(rule, n):
                rule.attempt_errors[attempt] = pair

    @user_facing
    def force_step_timeout(self, step: Selector, times: int | None = None) -> None:
        """The step's attempts time out at once ("Execution timed out after 0ms"), every
        attempt or the next `times`. The handler still starts; its result is ignored."""
        sel = parse_selector(step, method="force_step_timeout")
        n = _times(times, "force_step_timeout")
        rule = self._rule("do", sel, "force_step_timeout")
        if n is None:
            rule.timeout = True
        else:
            rule.attempt_timeouts.update(self._claim(rule, n))

    @user_facing
    def mock_event(self, type: str | Mapping[str, Any], payload: Any = None) -> None:
        """Deliver an event of `type` to the instance: buffered until a `wait_for` of that
        type consumes it. Also accepts Cloudflare's form, `mock_event({"type", "payload"})`."""
        if isinstance(type, Mapping) and payload is None:
            self._event(type.get("type"), type.get("payload"), "mock_event")
            return
        self._event(type, payload, "mock_event")

    def _event(self, type: Any, payload: Any, method: str) -> None:
        """Check an event as the engine will on delivery, naming the method the test called
        (not the run that delivers it), then buffer or send it."""
        if not isinstance(type, str) or not type:
            raise DefinitionError(f"{method}: type must be a non-empty string, got {type!r}")
        size = utf8_size(canonical(payload, root=f"{method} payload"))
        if size > MAX_PAYLOAD_BYTES:
            raise DefinitionError(
                f"{method}: the payload of event {type!r} is {size:,} bytes of JSON, over "
                "Cloudflare's 1 MiB limit for an event payload"
            )
        self._note_event(type, method)
        self._send(type, payload)

    def _note_event(self, type: str, method: str) -> None:
        """Remember that the test sent an event of `type` (by `method`), so that `unmatched`
        can say when no event wait of the run was for that type: usually a typo."""
        self._event_uses.setdefault(type, []).append(method)

    @user_facing
    def force_event_timeout(self, step: Selector | Iterable[Selector]) -> None:
        """The selected `wait_for` (by its name) times out at once."""
        for sel in _selectors(step, "force_event_timeout"):
            self._rule("wait", sel, "force_event_timeout").event_timeout = True

    disableSleeps = disable_sleeps
    disableRetryDelays = disable_retry_delays
    mockStepResult = mock_step_result
    mockStepError = mock_step_error
    forceStepTimeout = force_step_timeout
    mockEvent = mock_event
    forceEventTimeout = force_event_timeout

    # -- what the run did with it ----------------------------------------------------------
    def _recorded(self) -> list[str]:
        """The modifier calls the test made (and events it sent), one per selector or type:
        `["disable_sleeps()", "mock_step_result('Pay.charge')", "mock_event('paid')"]`."""
        made = ["disable_sleeps()"] if self._all_sleeps else []
        made += ["disable_retry_delays()"] if self._all_retry_delays else []
        for rule in sorted(self._rules.values(), key=lambda r: r.order):
            made.append(f"{', '.join(dict.fromkeys(rule.uses))}({rule.selector})")
        for type_, uses in self._event_uses.items():
            made.append(f"{', '.join(dict.fromkeys(uses))}({type_!r})")
        return made

    def steps(self, iid: str | None = None) -> list[str]:
        """Dotted paths of the `do` steps called, in first-call order, one entry per path."""
        seen: dict[str, None] = {}
        for call_iid, ref in self.calls:
            if ref.kind == "do" and (iid is None or call_iid == iid):
                seen.setdefault(ref.path, None)
        return list(seen)

    def unmatched(self, waits: Mapping[str, str] | None = None) -> list[str]:
        """One warning per selector that selected no call: usually a typo. Given `waits`, the
        run's event waits (name -> the event type it waited for), also one per event type the
        test sent that no wait was for (a mistyped type leaves the event buffered and the wait
        timing out)."""
        warnings = []
        for rule in sorted(self._rules.values(), key=lambda r: r.order):
            if rule.matched:
                continue
            uses = ", ".join(dict.fromkeys(rule.uses))
            word = _KIND_WORD[rule.kind]
            text = f"{uses}({rule.selector}) matched no {word} of this run"
            text += self._hint(rule, waits or {})
            warnings.append(text)
        if waits is not None:
            warnings += self._unwaited_events(waits)
        return warnings

    def _unwaited_events(self, waits: Mapping[str, str]) -> list[str]:
        return [
            f"{', '.join(dict.fromkeys(uses))}({type_!r}) matched no event wait of this run"
            + unwaited_hint(type_, waits)
            for type_, uses in self._event_uses.items()
            if type_ not in waits.values()
        ]

    def _hint(self, rule: _Rule, waits: Mapping[str, str]) -> str:
        sel = rule.selector
        calls = [ref for _, ref in self.calls if ref.kind == rule.kind]
        other = self._other_kind(rule, waits)
        if other:
            return other
        if not calls:
            return f" (no {_KIND_WORD[rule.kind]} was called)"
        if rule.preceded and sel.index is None:
            return (
                f" ({sel.name!r} was called only before the modifier call recorded it: "
                "record it before start())"
            )
        if sel.index is not None and rule.preceded >= sel.index:
            return (
                f" (call {sel.index} of {sel.name!r} was made before the modifier call "
                "recorded it: record it before start())"
            )
        if sel.index is not None and any(sel.matches(ref) for ref in calls):
            return f" (fewer than {sel.index} calls matched {sel.name!r})"
        known = list(dict.fromkeys(ref.path for ref in calls))
        close = difflib.get_close_matches(sel.name, known, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {close[0]!r}?)"
        shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        return f" (called: {shown})"

    def _other_kind(self, rule: _Rule, waits: Mapping[str, str]) -> str:
        """Why a selector that names a call of another kind matched nothing: a sleep given to
        mock_step_result, a step to disable_sleeps, a wait's event type for its name."""
        sel = rule.selector
        if sel.index is not None or any(ch in sel.name for ch in "*?["):
            return ""
        if rule.kind == "wait":
            named = [name for name, type_ in waits.items() if type_ == sel.name]
            if named:
                return (
                    f" ({sel.name!r} is the event type of the wait {named[0]!r}; a wait is "
                    "selected by its name)"
                )
        for _, ref in self.calls:
            if ref.kind != rule.kind and sel.name in (ref.path, ref.name):
                return f" ({sel.name!r} is {_a(ref.kind)}, not {_a(rule.kind)})"
        return ""

    # -- internals ---------------------------------------------------------------------------
    def _rule(self, kind: str, sel: StepSelector, method: str) -> _Rule:
        """The rule for (kind, selector), created on first use; refuses Cloudflare's illegal
        orders before anything is recorded."""
        key = (kind, sel)
        rule = self._rules.get(key)
        if rule is not None and rule.has_result:
            if method == "mock_step_result":
                raise ModifierError(
                    f"[WorkflowIntrospector] Trying to mock step '{sel.name}' multiple times!"
                )
            if method == "mock_step_error":
                raise ModifierError(
                    f"[WorkflowIntrospector] Trying to mock error on step '{sel.name}' after "
                    "mocking its result!"
                )
            if method == "force_step_timeout":
                raise ModifierError(
                    f"[WorkflowIntrospector] Trying to force timeout on step '{sel.name}' after "
                    "mocking its result!"
                )
        if rule is None:
            rule = self._rules[key] = _Rule(kind, sel, order=len(self._rules))
            # Recorded mid-run (after start() or a wait_for_*): an index still counts the
            # lifetime's calls from its start, as Cloudflare's step counts do.
            for lifetime in self._lifetimes.values():
                seen = sum(1 for ref in lifetime.refs if ref.kind == kind and sel.matches(ref))
                if seen:
                    lifetime.counts[rule.order] = seen
                    rule.preceded = max(rule.preceded, seen)
        rule.uses.append(method)
        return rule

    @staticmethod
    def _claim(rule: _Rule, n: int) -> range:
        start = rule.next_attempt
        rule.next_attempt += n
        return range(start, start + n)

    def _send(self, type: str, payload: Any) -> None:
        if not self._instances:
            self._events.append((type, payload))  # delivered when an instance starts
            return
        # Instances already started get it when the simulator next runs.
        self._pending += [SendEvent(iid, type, payload) for iid in self._instances]

    def _selected(self, iid: str, ref: StepRef) -> list[_Rule]:
        lifetime = self._lifetimes.get(iid)
        if lifetime is None:
            return []
        return lifetime.selected.get((ref.kind, ref.seq), [])

    # -- Hooks -------------------------------------------------------------------------------
    def lifetime_start(self, sim: HookView, iid: str, kind: str) -> list[Control]:
        # Selector indexes count per lifetime, like Cloudflare's per-Context counters.
        self._lifetimes[iid] = _Lifetime()
        if iid in self._instances:
            return []
        self._instances.append(iid)
        if kind != "workflow-start":
            return []
        # Recorded events reach every new instance before it runs (modifyAll).
        return [SendEvent(iid, type, payload) for type, payload in self._events]

    def pending(self) -> list[Control]:
        pending, self._pending = self._pending, []
        return pending

    def step_call(self, iid: str, ref: StepRef) -> None:
        self.calls.append((iid, ref))
        lifetime = self._lifetimes.setdefault(iid, _Lifetime())
        lifetime.refs.append(ref)
        selected = []
        for (kind, sel), rule in self._rules.items():
            if kind != ref.kind or not sel.matches(ref):
                continue
            count = lifetime.counts.get(rule.order, 0) + 1
            lifetime.counts[rule.order] = count
            if sel.index is None or sel.index == count:
                rule.matched = True
                selected.append(rule)
        if selected:
            selected.sort(key=_Rule.sort_key)
            lifetime.selected[(ref.kind, ref.seq)] = selected

    def before_attempt(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        for rule in self._selected(iid, ref):
            if not rule.mocks_attempts:
                continue
            # Cloudflare's order: a mocked error, then a forced timeout, then a mocked result.
            error = rule.error or rule.attempt_errors.get(attempt)
            if error is not None:
                return MockError(*error)
            if rule.timeout or attempt in rule.attempt_timeouts:
                return ForceTimeout()
            if rule.has_result:
                return MockResult(rule.result)
            return None
        return None

    def retry_delay(self, iid: str, ref: StepRef, attempt: int, delay_ms: int) -> int:
        if self._all_retry_delays or any(r.no_retry_delay for r in self._selected(iid, ref)):
            return 0
        return delay_ms

    def sleep_ms(self, iid: str, ref: StepRef, ms: int) -> int:
        if self._all_sleeps or any(r.no_sleep for r in self._selected(iid, ref)):
            return 0
        return ms

    def force_wait_timeout(self, iid: str, ref: StepRef) -> bool:
        return any(r.event_timeout for r in self._selected(iid, ref))
