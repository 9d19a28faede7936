"""create() with an id Cloudflare's binding refuses: the binding's own text (conformance
scenarios p3-instance-id-invalid-*), awf's hint as a note, and nothing created."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim import Workflow
from awf_sim.errors import DefinitionError, InstanceError


@Workflow("echo-id")
async def _echo(wf: Any, params: Any) -> Any:
    return params


@pytest.mark.parametrize(
    "iid", ["", "-a", "a b", "a.b", "abc\n", "caf\u00e9", "a\ud800", "x" * 101]
)
@pytest.mark.parametrize("profile", ["local", "production"])
def test_an_invalid_id_gets_the_bindings_error_and_creates_nothing(
    make_sim: Any, iid: str, profile: str
) -> None:
    sim = make_sim(profile=profile)
    with pytest.raises(InstanceError) as info:
        sim.create(_echo, {}, id=iid)
    assert str(info.value) == "Workflow instance has invalid id"
    # Still what it was before the text became the binding's: a DefinitionError (ValueError).
    assert isinstance(info.value, DefinitionError)
    assert isinstance(info.value, ValueError)
    assert info.value.__notes__ == [
        f"invalid instance id {iid!r}: use letters, digits, '_' and '-' (not first), "
        "at most 100 characters"
    ]
    assert sim.instances == []


def test_the_longest_valid_id_is_taken(make_sim: Any) -> None:
    sim = make_sim()
    assert sim.create(_echo, {}, id="_" + "9" * 99).id == "_" + "9" * 99
