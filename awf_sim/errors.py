"""Every error awf_sim raises, in one tree.

    Exception
    ├── AwfError                    base of every error awf_sim raises itself
    │   ├── DefinitionError         a workflow, domain, duration, schedule or step config is
    │   │                           invalid; unknown domain or method (also a ValueError)
    │   ├── SerializationError      a value that crosses a step boundary is not JSON; names
    │   │                           the field path (also a TypeError)
    │   ├── StepError               a step failed for good (retries exhausted, timeout);
    │   │                           `.name` and `.message` survive replay
    │   ├── NonRetryableError       raised by a handler: fail at once, no retry
    │   ├── WorkflowFatalError      the engine ends the instance (a limit, an unstorable result)
    │   ├── InstanceError           a lifecycle call the instance's state does not allow
    │   ├── NetworkAccessRefused    code inside a simulation tried to reach the real network
    │   │                           (also a ConnectionError)
    │   ├── IsolationError          an isolated attempt broke a limit or its process died
    │   ├── IsolatedHandlerError    a handler error from the child whose class cannot be
    │   │                           rebuilt in the parent: {name, message} only
    │   ├── StoreError              a --store path that cannot be used, a file that is not an
    │   │                           awf store, a store another process has open
    │   ├── ProcessDied             code under test ended the supervised child of chaos or
    │   │                           push's verify gate before a verdict (os._exit, a signal)
    │   ├── DatabaseError           ctx.db: a statement failed, or a name or value was refused
    │   ├── AIError                 ctx.ai: unknown recorded prompt, unsatisfiable schema,
    │   │                           provider error
    │   ├── UnmockedRequest         ctx.http: no mock answers the request
    │   ├── ModifierError           a test modifier call Cloudflare's introspector refuses
    │   ├── FaultPlanError          a fault, plan, kind list or replay token is invalid
    │   │                           (also a ValueError)
    │   ├── FlowError               a flow file or its input cannot be used
    │   ├── ScenarioError           a conformance scenario or trace file cannot be used
    │   ├── HistoryError            an instance history cannot be replayed (not JSON, another
    │   │                           format version, another workflow)
    │   └── MiniflareError          the Miniflare driver could not run
    └── AssertionError              what test helpers raise, so pytest reports them as failures
        ├── WorkflowFailed          awf_sim.testing: the instance ended errored (with the
        │                           timeline and the seed)
        ├── UnmatchedSelector       awf_sim.testing: a modifier selector matched no step
        └── DurabilityViolation     awf_sim.assert_durable: an invariant broke under a plan

    RuntimeWarning
    └── UnawaitedStepWarning        a run completed with a step it built and never awaited

The first five live in `awf_sim.dsl` (it ships inside Worker bundles with the standard library
only) and are re-exported here; `WorkflowFailed` and `DurabilityViolation` carry reports and
live with them (`awf_sim.testing`, `awf_sim.chaos`). Every other error is defined here, so that
no package has to import another sideways to name one.

Errors raised into a workflow have the same type on the first run and on replay, where only
{name, message} is stored; `str()` of a StepError or NonRetryableError starts `name: message`.
"""

from __future__ import annotations

from awf_sim.dsl._errors import (
    AwfError,
    DefinitionError,
    NonRetryableError,
    SerializationError,
    StepError,
    WorkflowFatalError,
)

__all__ = [
    "AIError",
    "AwfError",
    "DatabaseError",
    "DefinitionError",
    "FaultPlanError",
    "FlowError",
    "HistoryError",
    "InstanceError",
    "IsolatedHandlerError",
    "IsolationError",
    "MiniflareError",
    "ModifierError",
    "NetworkAccessRefused",
    "NonRetryableError",
    "ProcessDied",
    "ScenarioError",
    "SerializationError",
    "StepError",
    "StoreError",
    "UnawaitedStepWarning",
    "UnmockedRequest",
    "WorkflowFatalError",
]

_MOCK_HINT = (
    "use ctx.http, which the simulator routes to respx routes or a mock transport; "
    "pass http=... to Simulator/create_test_workflow"
)
_SQL_IN_MESSAGE_MAX = 300


# -- the engine -------------------------------------------------------------------------------


class InstanceError(AwfError):
    """A lifecycle call that the instance's state does not allow (Cloudflare's messages)."""


class NetworkAccessRefused(AwfError, ConnectionError):
    """Workflow code tried to reach the real network inside a simulation."""

    def __init__(self, target: str, operation: str = "connect to") -> None:
        self.target = target
        self.operation = operation
        super().__init__(
            f"network access refused inside a simulation: {operation} {target}. "
            f"Simulated workflows run in virtual time and must not reach real hosts; "
            f"to mock it, {_MOCK_HINT}."
        )

    def __reduce__(self) -> tuple[type[NetworkAccessRefused], tuple[str, str]]:
        # OSError would otherwise rebuild it from the message alone.
        return (type(self), (self.target, self.operation))


class StoreError(AwfError):
    """A SQLite store that cannot be used: a bad path, a file that is not an awf store (other
    tables, another schema version, not SQLite), or a store another process has open."""


class ProcessDied(AwfError):
    """A supervised child (chaos, push's verify gate) ended before it reached a verdict: the
    code under test called os._exit() or was killed by a signal. Always a failure."""


class IsolationError(AwfError):
    """An isolated attempt broke a limit or its process died; the engine retries it like any
    failure. `limit` is "cpu", "memory", "wall", "crash" or "unsupported"."""

    def __init__(self, limit: str, message: str) -> None:
        self.limit = limit
        super().__init__(message)

    def __reduce__(self) -> tuple[type[IsolationError], tuple[str, str]]:
        return (type(self), (self.limit, str(self)))


class IsolatedHandlerError(AwfError):
    """A handler exception from the child whose class cannot be rebuilt in the parent.

    `name` and `message` are the original's (the engine's `error_of` reads them), so the
    attempt fails with the same {name, message} as without isolation.
    """

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"

    def __reduce__(self) -> tuple[type[IsolatedHandlerError], tuple[str, str]]:
        return (type(self), (self.name, self.message))


# -- what handlers use (ctx) --------------------------------------------------------------------


class DatabaseError(AwfError):
    """A statement failed, or a name or value was refused.

    The message names the step using the database (when set), SQLite's message and the
    statement: `Inventory.check#1: no such table: inventry in "SELECT ..."`.
    """

    def __init__(self, detail: str, sql: str | None = None, step: str | None = None) -> None:
        self.detail = detail
        self.sql = sql
        self.step = step
        text = detail if sql is None else f'{detail} in "{_short_sql(sql)}"'
        super().__init__(f"{step}: {text}" if step else text)

    def __reduce__(self) -> tuple[type[DatabaseError], tuple[str, str | None, str | None]]:
        # The default reduce would pass the formatted message back as `detail`.
        return (type(self), (self.detail, self.sql, self.step))


def _short_sql(sql: str) -> str:
    flat = " ".join(sql.split())
    if len(flat) > _SQL_IN_MESSAGE_MAX:
        return flat[: _SQL_IN_MESSAGE_MAX - 1] + "…"
    return flat


class AIError(AwfError):
    """An AI call failed: unknown recorded prompt, unsatisfiable schema, provider error."""


class UnmockedRequest(AwfError):
    """A handler sent a request that no mock answers (or asked respx to pass it through)."""

    def __init__(self, method: str, url: str, reason: str | None = None) -> None:
        self.method = method
        self.url = url
        self.reason = reason
        what = reason or "no mock for"
        super().__init__(
            f"ctx.http: {what} {method} {url}; pass http=respx.Router() with a route for it "
            "to Simulator(...) or create_test_workflow(...), or set HTTP = respx.Router() "
            "in the flow file for awf-sim"
        )

    def __reduce__(self) -> tuple[type[UnmockedRequest], tuple[str, str, str | None]]:
        return (type(self), (self.method, self.url, self.reason))


# -- testing, chaos, flow files, conformance ----------------------------------------------------


class ModifierError(AwfError):
    """A modifier call that Cloudflare's introspector refuses (the message is Cloudflare's)."""


class FaultPlanError(AwfError, ValueError):
    """A fault, plan, kind list or replay token is not valid; the message says what to write."""


class UnawaitedStepWarning(RuntimeWarning):
    """A run completed with a step it built and never awaited (`wf.Email(u).send()` without
    `await`), which therefore did not run. Its own class, so that a filter can pick it out:
    `ignore::awf_sim.errors.UnawaitedStepWarning`, or the CLIs, which print it rather than
    let PYTHONWARNINGS=error end a command with a traceback."""


class FlowError(AwfError):
    """A flow file or its input cannot be used; the message says why and what to do."""


class ScenarioError(AwfError):
    """A scenario or trace file cannot be used; the message names the file and the field."""


class HistoryError(AwfError):
    """A history file that cannot be replayed: not JSON, another format or version, another
    workflow. The CLIs print it and exit 2."""


class MiniflareError(AwfError):
    """The Miniflare driver could not run; the message says what to install or run."""
