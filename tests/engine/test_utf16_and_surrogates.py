"""Lengths as JavaScript counts them, and strings JSON carries but UTF-8 refuses (fidelity
pass 2): a step name's 256-character limit is in UTF-16 code units, and a lone surrogate in a
name, a result, a payload or params never crashes the engine."""

from __future__ import annotations

from typing import Any

from awf_sim.dsl._identity import utf8_size, utf16_len

EMOJI = "\U0001f600"


def test_utf16_len_and_utf8_size() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len(EMOJI) == 2
    assert utf16_len("\ud800") == 1
    assert utf8_size("\ud800") == 3  # what a TextEncoder writes (U+FFFD), never an error


class _Named:
    async def run(self, event: Any, step: Any) -> Any:
        @step.do(event["payload"]["name"])
        async def s() -> Any:
            return event["payload"]["value"]

        try:
            return await s()
        except Exception as exc:
            return exc.message  # type: ignore[attr-defined]


def test_a_step_name_is_measured_in_utf16_code_units(make_sim: Any) -> None:
    sim = make_sim(profile="local")
    ok = sim.create(_Named, {"name": EMOJI * 128, "value": 1})
    over = sim.create(_Named, {"name": EMOJI * 129, "value": 1})
    sim.run()
    assert ok.status()["output"] == 1
    assert "exceeds max length (256 chars)" in over.status()["output"]


def test_lone_surrogates_in_names_results_and_payloads_do_not_crash(make_sim: Any) -> None:
    sim = make_sim(profile="local")
    inst = sim.create(_Named, {"name": "s\ud800", "value": "x\udc00y"})
    sim.run()
    assert inst.status()["output"] == "x\udc00y"
    done = sim.create(_Named, {"name": "t", "value": 1})
    sim.run()
    done.send_event("t", {"k\udfff": "\ud800"})  # to a finished instance: taken (local)
