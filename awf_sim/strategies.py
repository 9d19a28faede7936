"""Hypothesis strategies that property-test durability: fault plans and workflow inputs.

```python
from hypothesis import given, settings
from awf_sim import assert_durable
from awf_sim.strategies import fault_plans, inputs

@settings(max_examples=50)
@given(plan=fault_plans(order_processing, EXAMPLE, db=DATABASE))
def test_order_is_durable(plan):
    assert_durable(order_processing, EXAMPLE, plan, db=DATABASE)
```

Imported only when used: `import awf_sim` never imports Hypothesis. Importing this module
registers `awf_sim.chaos.SEED_SOURCE` (where `assert_durable(seed=None)` draws simulator seeds)
with Hypothesis, so that every test case starts it from the same state.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import decimal
import enum
import types
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from hypothesis import register_random
from hypothesis import strategies as st

from awf_sim.chaos._durable import SEED_SOURCE, baseline_for
from awf_sim.chaos._faults import earlier_attempt_aimed, parse_kinds
from awf_sim.chaos._model import Plan, Target, checked_workflow
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._identity import canonical, loads
from awf_sim.dsl._values import is_structured
from awf_sim.dsl._workflow import Workflow
from awf_sim.testing._workflow import with_flow_defaults

__all__ = ["fault_plans", "inputs"]

register_random(SEED_SOURCE)


def fault_plans(
    workflow: Workflow,
    params: Any,
    max_faults: int = 3,
    kinds: str | Sequence[str] | None = None,
    *,
    db: Any = None,
    ai: Any = None,
    http: Any = None,
    env: Mapping[str, Any] | None = None,
    seed: int = 0,
    profile: str = "production",
) -> st.SearchStrategy[Plan]:
    """Fault plans for `workflow` run on `params`: lists of up to `max_faults` faults, each
    aimed at a fault point of the fault-free run (a step call and attempt, a sleep, an event
    wait, a declared event). They shrink towards fewer faults and earlier fault points.

    `kinds`: the fault kinds to draw from (names or groups, as `awf-sim chaos --faults`).
    The keyword arguments are the world of the run, as for `assert_durable`; the fault-free
    run that finds the fault points happens on the first draw, once.
    """
    checked_workflow(workflow, "fault_plans")
    if isinstance(max_faults, bool) or not isinstance(max_faults, int) or max_faults < 0:
        raise DefinitionError(
            f"fault_plans: max_faults must be a whole number >= 0, got {max_faults!r}"
        )
    chosen = parse_kinds(kinds)
    db, ai, http = with_flow_defaults(workflow, db, ai, http)
    target = Target(workflow, params, db=db, env=env, ai=ai, http=http, seed=seed, profile=profile)

    def build() -> st.SearchStrategy[Plan]:
        base = baseline_for(target)
        universe = [f for f in [*base.singles, *base.extra] if f["kind"] in chosen]
        if not universe or max_faults == 0:
            return st.just([])
        # Indices into the fault points in run order: each shrinks towards 0, the earliest
        # fault point's first kind. Repeats are dropped after the draw, not refused during it:
        # Hypothesis shrinks a `unique` list poorly (it seldom deletes an element before the
        # one that matters), so a plan often stayed at two or three faults where one was
        # enough to break the invariant.
        # Built in a composite, not by `.map`: Hypothesis prints a mapped value as the call
        # that made it (`plan=pick([4])`), a composite's as the plan itself.
        indices = st.lists(
            st.integers(min_value=0, max_value=len(universe) - 1), max_size=max_faults
        )

        # A later attempt than the fault-free run makes (a transient error's or a timeout's,
        # so that combinations can use up the retries) only with a fault at an earlier
        # attempt of the same step: alone it never fires, and assert_durable refuses a fault
        # that could only have been a typo.
        later = {id(f) for f in base.extra}

        @st.composite
        def plans(draw: st.DrawFn) -> Plan:
            picked = [universe[i] for i in dict.fromkeys(draw(indices))]
            kept = [f for f in picked if id(f) not in later]
            # Earliest first, so a chain (attempts 2 and 3 after a fault at 1) is kept whole.
            for f in sorted((f for f in picked if id(f) in later), key=lambda f: f["attempt"]):
                if earlier_attempt_aimed(f, kept):
                    kept.append(f)
            keep = {id(f) for f in kept}
            return [copy.deepcopy(f) for f in picked if id(f) in keep]

        return plans()

    return st.deferred(build)


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "model_fields")


def _dump(model: Any) -> Any:
    # By alias: what the model validates again (a field `Field(alias="orderId")` is read as
    # orderId, not by its Python name), also as part of an outer model's params.
    return model.model_dump(mode="json", by_alias=True)


def _is_dataclass(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _drawn_here(annotation: Any) -> bool:
    """Does the type hold something Hypothesis's own `from_type` draws wrongly for JSON
    params: a pydantic model (aliases, patterns), a float (NaN and infinities are not JSON),
    or a dataclass or TypedDict that may hold either?"""
    if annotation is float or _is_model(annotation):
        return True
    if _is_dataclass(annotation) or _is_typeddict(annotation):
        return True
    return any(_drawn_here(a) for a in get_args(annotation))


_DEFERRED: dict[Any, st.SearchStrategy[Any]] = {}


def _deferred(tp: Any, build: Callable[[], st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One lazy strategy per type: a type that holds itself (a tree of comments) refers back
    to the same strategy, as Hypothesis's from_type does, instead of unfolding for ever."""
    found = _DEFERRED.get(tp)
    if found is None:
        found = _DEFERRED[tp] = st.deferred(build)
    return found


def _finite_floats(metadata: Sequence[Any]) -> st.SearchStrategy[float]:
    """Floats JSON can hold, within the field's bounds (annotated-types ge/gt/le/lt)."""
    bounds: dict[str, Any] = {}
    for m in metadata:
        for attr, key, exclude in (
            ("ge", "min_value", None),
            ("gt", "min_value", "exclude_min"),
            ("le", "max_value", None),
            ("lt", "max_value", "exclude_max"),
        ):
            value = getattr(m, attr, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                bounds[key] = value
                if exclude:
                    bounds[exclude] = True
    return st.floats(allow_nan=False, allow_infinity=False, **bounds)


def _record_strategy(tp: Any) -> st.SearchStrategy[Any]:
    """A dataclass or a TypedDict, each field drawn by `_field_strategy`."""
    hints = get_type_hints(tp)
    if _is_dataclass(tp):
        fields = {
            f.name: _field_strategy(hints[f.name], ()) for f in dataclasses.fields(tp) if f.init
        }
        return st.builds(tp, **fields)
    required = {k: _field_strategy(hints[k], ()) for k in tp.__required_keys__}
    optional = {k: _field_strategy(hints[k], ()) for k in tp.__optional_keys__}
    return st.fixed_dictionaries(required, optional=optional)


def _field_strategy(annotation: Any, metadata: Sequence[Any]) -> st.SearchStrategy[Any]:
    """Values of one field: models (also inside lists, dicts and unions) field by field as
    JSON, a `pattern` from its regex, anything else from its type and constraints."""
    if get_origin(annotation) is Annotated:
        metadata = [*annotation.__metadata__, *metadata]
        annotation = get_args(annotation)[0]
    if _is_model(annotation):
        return _deferred(annotation, lambda: _model_strategy(annotation).map(_dump))
    if annotation is type(None):
        return st.none()
    if annotation is float:
        return _finite_floats(metadata)
    if _is_dataclass(annotation) or _is_typeddict(annotation):
        return _deferred(annotation, lambda: _record_strategy(annotation))
    origin, args = get_origin(annotation), get_args(annotation)
    pattern = next(
        (m.pattern for m in metadata if isinstance(getattr(m, "pattern", None), str)), None
    )
    if origin in (Union, types.UnionType) and (pattern is not None or _drawn_here(annotation)):
        # Each member on its own, with the field's constraints (`str | None` with a pattern).
        return st.one_of([_field_strategy(a, metadata) for a in args])
    if _drawn_here(annotation):
        # Hypothesis would build inner models itself, blind to their pydantic-only constraints
        # (a pattern) and aliases, so nearly every draw would be filtered out; and its floats
        # include NaN and infinities, which are not JSON.
        min_size = next((m.min_length for m in metadata if hasattr(m, "min_length")), 0)
        max_size = next((m.max_length for m in metadata if hasattr(m, "max_length")), None)
        if origin is list and len(args) == 1:
            return st.lists(_field_strategy(args[0], ()), min_size=min_size, max_size=max_size)
        if origin is dict and len(args) == 2:
            keys, values = _field_strategy(args[0], ()), _field_strategy(args[1], ())
            return st.dictionaries(keys, values, min_size=min_size, max_size=max_size)
    if pattern is not None and annotation is str:
        # Pydantic matches a pattern anywhere in the string (re.search), as from_regex draws.
        return st.from_regex(pattern)
    if metadata:
        annotated: Any = Annotated  # a type form built at run time
        return st.from_type(annotated[(annotation, *metadata)])
    return st.from_type(annotation)


def _model_strategy(model: Any) -> st.SearchStrategy[Any]:
    """Valid instances of a pydantic model: each field from its type and constraints
    (annotated-types metadata such as `Field(ge=1)`), then validated by the model itself."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        strategy = _field_strategy(info.annotation, list(info.metadata))
        (required if info.is_required() else optional)[key] = strategy

    def validate(data: dict[str, Any]) -> Any:
        try:
            return model.model_validate(data)
        except ValueError:  # pydantic's ValidationError is a ValueError
            return None

    return (
        st.fixed_dictionaries(required, optional=optional)
        .map(validate)
        .filter(lambda m: m is not None)
    )


def _json(value: Any) -> Any:
    """A drawn dataclass or TypedDict value as the JSON a caller would send: dates and times
    as ISO strings, enums as their values, UUIDs and decimals as strings (as pydantic's JSON
    mode writes them)."""
    if _is_dataclass(type(value)):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, enum.Enum):
        return _json(value.value)
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    return value


def inputs(workflow: Workflow) -> st.SearchStrategy[Any]:
    """Params for `workflow`: from the type its function's params are annotated with (a
    pydantic model, a dataclass or a TypedDict; as JSON values, what `create` takes: fields
    by alias, floats finite), else one of its `examples`."""
    checked_workflow(workflow, "inputs")
    model = workflow.input_model
    if model is not None:
        return _model_strategy(model).map(_dump)
    declared = workflow.input_type
    if is_structured(declared) or _is_typeddict(declared):
        # A dataclass or TypedDict input (Workflow[Order, ...]): drawn from the type, as JSON.
        return _record_strategy(declared).map(lambda v: loads(canonical(_json(v), root="params")))
    if workflow.examples:
        return st.sampled_from(workflow.examples).map(copy.deepcopy)
    raise DefinitionError(
        f"inputs({workflow.name!r}): the workflow's params have no input type (a pydantic "
        "model, a dataclass or a TypedDict) and it has no examples; annotate its params with "
        "one, or add examples=[...]"
    )
