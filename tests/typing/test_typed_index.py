"""`wf[...]` given something other than a TypedDomain class says so in one line.

`wf[Inventory.domain](p)` (the Domain a TypedDomain defines, or any Domain) ended the instance
with `TypeError: the first argument must be callable`, from functools, naming neither the
mistake nor the fix. mypy and pyright reject it too; this is for code they do not check.
"""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim import TypedDomain, Workflow, step
from awf_sim.testing import WorkflowFailed, create_test_workflow


async def look(sku: str, args: None, ctx: Any) -> int:
    return len(sku)


class IxShelf(TypedDomain[str]):
    look = step(look)


@Workflow("ix-domain-object")
async def ix_domain_object(wf: Any, params: Any) -> int:
    return await wf[IxShelf.domain]("abc").look()  # type: ignore[no-any-return]


def test_a_domain_object_in_wf_brackets_names_the_fix() -> None:
    with pytest.raises(WorkflowFailed) as info:
        create_test_workflow(ix_domain_object).run({})
    first = str(info.value).splitlines()[0]
    assert first == (
        "DefinitionError: wf[Domain('IxShelf', methods=[look])]: wf[...] takes a TypedDomain "
        "class, as in wf[Inventory](context).check(); a Domain is called as "
        "wf.IxShelf(context)"
    )


@Workflow("ix-class")
async def ix_class(wf: Any, params: Any) -> int:
    return await wf[IxShelf]("abc").look()  # type: ignore[no-any-return]


def test_the_class_itself_still_works() -> None:
    assert create_test_workflow(ix_class).run({}) == 3
