"""The data chaos passes between its rooms: faults and plans, targets, runs, verdicts, findings.

The runner (`_run`), the fault space (`_space`), the invariants, the shrinker, the campaign
and the report all import these, and this module imports none of them: that is what keeps
them free of cycles. A fault is a plain dict as users write it (`{"kind": ..., "step": ...,
"attempt": 1}`, see `_faults.normalize_fault`): it travels through tokens and JSON reports
unchanged, so `Fault` names that shape rather than wrapping it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Required, TypedDict

from awf_sim.dsl._config import PROFILES, ResolvedConfig, merge_config
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._workflow import Workflow
from awf_sim.engine import TimelineEntry, World
from awf_sim.engine._limits import checked_cpu_ms
from awf_sim.engine._simulator import DEFAULT_CPU_MS

__all__ = [
    "BODY_RUNAWAY",
    "CPU_LIMIT",
    "Baseline",
    "CampaignResult",
    "Fault",
    "Finding",
    "Fired",
    "HandlerRun",
    "LateEvent",
    "Masks",
    "Observation",
    "Plan",
    "Point",
    "Progress",
    "SentEvent",
    "TableMask",
    "Target",
    "Verdict",
    "Violation",
    "step_config",
]


class Fault(TypedDict, total=False):
    """One normalised fault (`_faults.normalize_fault`): a kind, aimed at a step selector and
    attempt, or at an event type; clock-skew and reseed carry `ms` and `seed`."""

    kind: Required[str]
    step: str | dict[str, Any]  # a selector: dotted path, glob, step name, or {name, index}
    attempt: int
    type: str  # event kinds: the event type
    ms: int  # clock-skew
    seed: int  # reseed


# The error an attempt or the workflow body gets past its CPU budget (Target.cpu_ms), and the
# name chaos reports a runaway workflow body under (a runaway handler: its step's path).
CPU_LIMIT = "CpuLimitExceeded"
BODY_RUNAWAY = "the workflow body"

Plan = list[Fault]  # faults in canonical order (earlier fault points first)
Progress = Callable[[str, int, int], None]  # (phase, done, total)


class HandlerRun(NamedTuple):
    """A handler ran ("run") or its result was checkpointed ("ckpt") in one run."""

    event: str  # "run" | "ckpt"
    lifetime: int  # 1-based lifetime of the instance
    path: str
    occurrence: int  # per-path call number within its lifetime
    name: str  # the Cloudflare step name
    name_count: int  # the occurrence of that name (Cloudflare's ctx.step.count)
    attempt: int


# -- the world and one run ----------------------------------------------------------------------


def checked_workflow(workflow: Any, what: str) -> Workflow:
    """`workflow` when it is a Workflow; else a DefinitionError naming what was given. A
    workflow class written for Cloudflare (`run(self, event, step)`) runs on the Simulator,
    but chaos judges steps by the paths of @Workflow functions."""
    if isinstance(workflow, Workflow):
        return workflow
    if isinstance(workflow, type) and callable(getattr(workflow, "run", None)):
        raise DefinitionError(
            f"{what} takes a @Workflow function; {workflow.__name__} is a class with "
            "run(event, step) (Cloudflare's Python API), which Simulator().create runs but "
            f"{what} does not: write the workflow with @Workflow and Domains to check it"
        )
    raise DefinitionError(
        f"{what} takes a @Workflow function, got {type(workflow).__name__} {workflow!r:.80}"
    )


@dataclass
class Target:
    """What chaos runs: one workflow, its params, and the world its handlers see.

    `cpu_ms`: the CPU time a handler attempt (or the workflow body between two awaits) may
    run without giving control back, in every run chaos makes, before it fails as
    `CpuLimitExceeded` (retried per the step's config), as `Simulator(cpu_ms=...)`: a runaway
    handler costs each run that reaches it this much CPU (Cloudflare's default, 30 s; None:
    unbounded)."""

    workflow: Workflow
    params: Any = None
    db: Any = None
    env: Mapping[str, Any] | None = None
    ai: Any = None
    http: Any = None
    seed: int = 0
    profile: str = "production"
    instance_id: str | None = None
    cpu_ms: int | None = DEFAULT_CPU_MS

    def __post_init__(self) -> None:
        checked_workflow(self.workflow, "chaos")
        checked_cpu_ms(self.cpu_ms, "Target.cpu_ms")

    @property
    def iid(self) -> str:
        return self.instance_id or ("chaos-" + self.workflow.name)[:100]

    @property
    def world(self) -> World:
        """What the target's simulations see, as one value."""
        return World(self.db, self.ai, self.http, dict(self.env or {}), self.seed, self.profile)

    @classmethod
    def of(
        cls,
        workflow: Workflow,
        params: Any,
        world: World,
        instance_id: str | None = None,
        cpu_ms: int | None = DEFAULT_CPU_MS,
    ) -> Target:
        """A target for `workflow` in `world`."""
        w = world
        return cls(
            workflow, params, w.db, w.env, w.ai, w.http, w.seed, w.profile, instance_id, cpu_ms
        )


@dataclass(eq=False)
class Observation:
    """Everything one run did, for the invariants and the report."""

    plan: Plan
    status: str
    output: Any
    error: dict[str, str] | None
    timeline: list[TimelineEntry]
    end_ms: int
    bound_hit: bool
    lifetimes: list[tuple[str, list[tuple[str, str, str, int]]]]  # (kind, calls) per lifetime
    log: list[HandlerRun]
    injected: set[tuple[str, int]]
    fired: list[Fired]
    waited: set[tuple[str, int]]
    sent: list[SentEvent]
    digest: str
    snapshot: dict[str, list[dict[str, Any]]] | None = None
    writes: list[tuple[str, str, str | None]] | None = None
    effects: dict[str, int] | None = None  # effect identity -> times it counts (see _effects)
    effect_steps: list[str | None] | None = None  # steps of the effects that count each time
    # (lifetime, step name, type name) of each step result the workflow received
    value_types: list[tuple[int, str, str]] | None = None
    # (step path or "output", where in it, the int) of each integer beyond JavaScript's safe
    # range in a step result or the output; read in full runs only (the baseline's).
    unsafe_ints: list[tuple[str, str, int]] | None = None
    # table -> the first-column values of the rows the run inserted; full runs only.
    inserted: dict[str, frozenset[Any]] | None = None
    # (step name, count) -> the checkpointed result the workflow received; full runs only.
    results: dict[tuple[str, int], Any] | None = None


@dataclass(frozen=True, slots=True)
class SentEvent:
    """An event chaos sent to the instance."""

    seq: int  # the engine's event number
    index: int  # the declared event (Workflow(events=[...])) it stands for
    copy: int  # 0, or 1 for a duplicate
    type: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class LateEvent:
    """A declared event that a fault holds back until `offset_ms` from the timeout of `wait`
    (the wait that took it in the fault-free run), whenever that wait starts: -1 ms for
    event-late, 0 for event-at-deadline, +1 ms for event-withheld."""

    wait: str
    index: int
    type: str
    payload: Any
    fault: int
    offset_ms: int = -1


@dataclass(slots=True)
class Fired:
    """A fault that took effect: which, where and when (virtual ms)."""

    fault: int  # index in the plan
    kind: str
    at_ms: int
    ref_kind: str | None  # "do", "sleep", "wait", or None (events, step-less replay faults)
    path: str | None
    name: str | None
    count: int
    occurrence: int  # per-path call number of its lifetime (events: the event's copy number)
    attempt: int | None
    lifetime: int


@dataclass
class Violation:
    """One invariant broken in one run. `key` names what it is about (a step path, an event
    type, "output"), so that runs breaking it the same way group together."""

    invariant: str
    key: str
    message: str
    difference: list[str] = field(default_factory=list)
    hint: str = ""
    where: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant,
            "key": self.key,
            "message": self.message,
            "difference": list(self.difference),
            "hint": self.hint,
            "where": self.where,
        }


# -- the baseline and its fault points ----------------------------------------------------------


@dataclass
class TableMask:
    key: str | None  # the column rows are matched by; None: rows compare as a multiset
    count_only: bool  # rows themselves depend on the clock or seed: compare how many
    cells: dict[Any, set[str]]  # key value -> volatile columns


@dataclass
class Masks:
    status: bool
    error: bool
    output: Any  # None: stable; True: volatile; dict: per key / index
    tables: dict[str, TableMask]
    effects: bool


@dataclass(frozen=True)
class Point:
    """A place a fault can hit, read from the baseline."""

    kind: str  # "do", "sleep", "wait", "event"
    label: str  # "Inventory.reserve", "Email.send#2", "sleep cool-off", "event approval"
    selector: Any  # the step selector that hits exactly this call (None for events)
    path: str  # the step path, sleep or wait name, or event type
    occurrence: int
    attempts: tuple[int, ...] = ()  # attempts whose handler ran (do steps)
    success: int | None = None  # the attempt that was checkpointed


@dataclass
class Baseline:
    """The fault-free run, the probe run, and the fault space they span (`_space`)."""

    target: Target
    obs: Observation
    probe: Observation
    masks: Masks
    late: dict[int, tuple[str, int]]  # declared event -> (the wait that took it, late time)
    bound_ms: int
    points: list[Point]
    kinds: tuple[str, ...]
    singles: Plan  # one fault per (point, kind, attempt): the exhaustive runs
    extra: Plan  # further faults for combinations (later attempts)
    labels: dict[tuple[str, str, int], str] = field(default_factory=dict)
    aimed: dict[str, list[str]] = field(default_factory=dict)  # point label -> kinds aimed
    order: dict[str, int] = field(default_factory=dict)  # fault -> rank (see _plan_order)
    _configs: dict[tuple[str, str], ResolvedConfig | None] = field(default_factory=dict)
    # Checks' work that depends on the baseline and one fact of a run only (a database digest:
    # equal digests, equal rows), done once: (what, key) -> result.
    _derived: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    _world: World | None = None
    # The campaign's recorded runs (`_memo`): None until first used, False when not used.
    _memo: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # The recorded runs hold live database images and specs: they stay in this process.
        state = dict(self.__dict__)
        state["_memo"] = None
        return state

    @property
    def world(self) -> World:
        """The target's world, made once: every run of the campaign starts from it."""
        if self._world is None:
            self._world = self.target.world
        return self._world

    @property
    def workflow(self) -> Workflow:
        return self.target.workflow

    @property
    def late_ms(self) -> dict[int, int]:
        """When event-late sends each declared event in the fault-free run's timing."""
        return {index: at for index, (_wait, at) in self.late.items()}

    def config_of(self, path: str, name: str) -> ResolvedConfig | None:
        key = (path, name)
        if not self._configs:
            # The engine records each step's resolved config on its step-start entry; this
            # covers raw wf.do and Cloudflare-API steps, which the DSL cannot resolve.
            for e in self.obs.timeline:
                if e["kind"] == "step-start" and e.get("config") is not None:
                    self._configs[(e["path"] or "", e["name"] or "")] = e["config"]
        if key not in self._configs:
            self._configs[key] = step_config(self.workflow, path, name, self.target.profile)
        return self._configs[key]

    def label_of(self, fired: Fired) -> str:
        if fired.ref_kind == "event":
            return f"event {fired.path}"
        if fired.ref_kind is None or fired.path is None:
            return "next replay"
        return self.labels.get(
            (fired.ref_kind, fired.path, fired.occurrence),
            fired.path if fired.ref_kind == "do" else f"{fired.ref_kind} {fired.path}",
        )


def step_config(workflow: Workflow, path: str, name: str, profile: str) -> ResolvedConfig | None:
    """The resolved config of a domain step (chains: the first method's); None if unknown."""
    parts = path.split(".")
    if len(parts) < 2 or "@" not in name or profile not in PROFILES:
        return None
    try:
        spec = workflow.resolve_domain(parts[0]).spec(parts[1])
    except DefinitionError:
        return None
    return merge_config(PROFILES[profile], spec.config)


# -- verdicts and findings ------------------------------------------------------------------------


@dataclass
class Verdict:
    """What one run found (small and picklable: it crosses process boundaries)."""

    checked: list[str]
    violations: list[Violation]
    pairs: list[tuple[str, str]]  # (fault point label, kind) of the faults that fired
    # Event waits the run reached: (wait name, whether it timed out), for the coverage of
    # each wait_for's timeout branch.
    waits: list[tuple[str, bool]] = field(default_factory=list)
    # What the CPU budget (Target.cpu_ms) stopped in the run: step paths whose attempt it
    # ended as CpuLimitExceeded, and BODY_RUNAWAY for the workflow body (see `cpu_stopped`).
    cpu: list[str] = field(default_factory=list)


@dataclass
class Finding:
    """One way the workflow breaks an invariant: the shrunk plan and everything to fix it."""

    violation: Violation
    plan: Plan
    token: str
    original_plan: Plan
    runs: int  # runs that broke this invariant the same way
    observation: Observation
    # Violations of other invariants that this one explains (the same step, one cause): one
    # bug is one finding, its consequences listed under it.
    related: list[Finding] = field(default_factory=list)


@dataclass
class CampaignResult:
    target: Target
    baseline: Baseline
    runs: int  # fault-injected runs (not counting the baseline)
    exhaustive: int
    random: int
    checked: Counter[str]
    violating: Counter[str]
    coverage: Counter[tuple[str, str]]
    findings: list[Finding]
    seed: int
    max_faults: int
    replay: str | None = None  # the token, for a --replay run
    # Each event wait reached in any run -> runs in which it timed out (its timeout branch).
    wait_timeouts: Counter[str] = field(default_factory=Counter)
    # What the CPU budget stopped (a step path, or BODY_RUNAWAY) -> runs in which it did,
    # the fault-free run included.
    cpu_stopped: Counter[str] = field(default_factory=Counter)
    # The runs planned, when --max-seconds stopped the campaign before all of them ran
    # (`runs` then counts those that ran): no verdict, so never clean.
    planned: int | None = None

    @property
    def cut_short(self) -> bool:
        return self.planned is not None

    @property
    def clean(self) -> bool:
        return not self.findings and not self.cut_short
