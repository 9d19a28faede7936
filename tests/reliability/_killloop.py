"""SIGKILL a durable run again and again; check what survives.

`kill_loop(flow_name, budget_s, max_kills, rng)` forks a child that runs one instance of a flow
from `FLOWS` with a SQLite store, kills it with SIGKILL after a random delay, and forks the next
child on the same store, which resumes the unfinished instance, until a child finishes. After
every kill the store passes `PRAGMA integrity_check`. Each handler appends `path|nonce` to a log
(O_APPEND: a line is written whole or not at all) and returns its nonce beside a deterministic
value, so at the end:

- no checkpointed step ran twice: for each step, the nonce the workflow got back (the
  checkpoint) is the last one its handler logged; an execution after it would be a handler run
  again after its checkpoint was committed (at-least-once allows re-runs *before* it);
- the deterministic part of the output equals a crash-free run's.

Used by tests/reliability/test_kill_loop.py (a budget) and benchmarks/kill_loop.py (more).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLOW_SOURCE = """
import asyncio
import os

from awf_sim import Domain, Workflow


def _log(path):
    nonce = os.urandom(8).hex()
    fd = os.open(os.environ["AWF_KILL_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{path}|{nonce}\\n".encode())
    finally:
        os.close(fd)
    return nonce


def _step(path, value):
    async def handler(ctx, args, c):
        nonce = _log(path)
        return {"v": value(ctx, args), "nonce": nonce}
    return handler


def _flaky(path, value):
    async def handler(ctx, args, c):
        nonce = _log(path)
        if c.attempt == 1:
            raise RuntimeError("transient")
        return {"v": value(ctx, args), "nonce": nonce}
    return handler


RETRY = {"retries": {"limit": 3, "delay": "1 second"}}
K = Domain("K", {
    **{f"s{i}": _step(f"K.s{i}", lambda ctx, args, i=i: ctx["n"] * 10 + i) for i in range(8)},
    "flaky": {"handler": _flaky("K.flaky", lambda ctx, args: ctx["n"] + 100), **RETRY},
    **{f"p{i}": _step(f"K.p{i}", lambda ctx, args, i=i: [ctx["n"], i]) for i in range(4)},
})


def _out(results):
    return {"values": [r["v"] for r in results], "nonces": [r["nonce"] for r in results]}


@Workflow("linear", examples=[{"n": 3}], domains=[K])
async def linear(wf, p):
    return _out([await getattr(wf.K({"n": p["n"]}), f"s{i}")() for i in range(8)])


@Workflow("sleepy", examples=[{"n": 4}], domains=[K])
async def sleepy(wf, p):
    out = []
    for i in range(4):
        out.append(await getattr(wf.K({"n": p["n"]}), f"s{i}")())
        await wf.sleep(f"nap-{i}", "1 hour")
    return _out(out)


@Workflow("parallel", examples=[{"n": 5}], domains=[K])
async def parallel(wf, p):
    first = await wf.K({"n": p["n"]}).s0()
    group = await asyncio.gather(*(getattr(wf.K({"n": p["n"]}), f"p{i}")() for i in range(4)))
    last = await wf.K({"n": p["n"]}).s1()
    return _out([first, *group, last])


@Workflow("retrying", examples=[{"n": 6}], domains=[K])
async def retrying(wf, p):
    a = await wf.K({"n": p["n"]}).s0()
    b = await wf.K({"n": p["n"]}).flaky()
    c = await wf.K({"n": p["n"]}).s1()
    return _out([a, b, c])


@Workflow("stateful", examples=[{"n": 7}], domains=[K])
async def stateful(wf, p):
    state = wf.state({"count": 0})
    out = []
    for i in range(3):
        out.append(await getattr(wf.K({"n": p["n"]}), f"s{i}")())
        await state.update({"count": state.current["count"] + 1})
    result = _out(out)
    result["values"].append(state.current["count"])
    return result
"""

FLOWS = ("linear", "sleepy", "parallel", "retrying", "stateful")


@dataclass
class LoopResult:
    flow: str
    kills: int = 0
    children: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


_loaded: dict[str, Any] = {}


def _load(flow_path: str) -> Any:
    """The flow file, loaded once in the parent (children inherit it, and the engine's one-time
    setup, so that a child only runs the simulation)."""
    if flow_path not in _loaded:
        from awf_sim.engine._simulator import Simulator
        from awf_sim.flow import load_flow

        loaded = load_flow(flow_path)
        with Simulator(world=loaded.world) as sim:  # installs the clock once, here
            sim.run_until_done(sim.create(loaded.pick("parallel"), {"n": 0}))
        _loaded[flow_path] = loaded
    return _loaded[flow_path]


def _child(flow_path: str, name: str, store: str, log: str, out: str) -> None:
    """Runs in the forked child: resume or start the instance, write its output, exit."""
    code = 0
    try:
        os.environ["AWF_KILL_LOG"] = log
        from awf_sim.engine._calls import TERMINAL
        from awf_sim.engine._simulator import Simulator

        loaded = _load(flow_path)
        wf = loaded.pick(name)
        with Simulator(world=loaded.world, store=store) as sim:
            inst = None
            for candidate in sim.instances:
                if candidate.workflow == name:
                    inst = candidate
                    if candidate.status()["status"] not in TERMINAL:
                        sim.register(wf)
                        sim.recover()
                    break
            if inst is None:
                inst = sim.create(wf, wf.examples[0])
            sim.run_until_done(inst)
            status = inst.status()
        Path(out).write_text(json.dumps({"status": status["status"], "output": status["output"]}))
    except BaseException:
        Path(out + ".error").write_text(traceback.format_exc())
        code = 3
    os._exit(code)


def _fork_run(flow_path: str, name: str, store: str, log: str, out: str) -> int:
    _load(flow_path)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        _child(flow_path, name, store, log, out)
    return pid


def _check_store(store: str) -> str | None:
    if not os.path.exists(store):
        return None
    with sqlite3.connect(store) as db:
        row = db.execute("PRAGMA integrity_check").fetchone()
    db.close()
    return None if row == ("ok",) else f"integrity_check: {row}"


def _reference(workdir: Path, flow_path: str, name: str) -> tuple[dict[str, Any], float]:
    """A crash-free run's output, and how long a child takes."""
    store, log, out = (str(workdir / f"ref-{name}.{ext}") for ext in ("db", "log", "json"))
    _load(flow_path)
    started = time.monotonic()
    pid = _fork_run(flow_path, name, store, log, out)
    _, status = os.waitpid(pid, 0)
    took = time.monotonic() - started
    if status != 0:
        error = Path(out + ".error")
        raise RuntimeError(error.read_text() if error.exists() else f"child status {status}")
    return json.loads(Path(out).read_text()), took


def kill_loop(
    workdir: Path, name: str, *, budget_s: float, max_kills: int, rng: random.Random
) -> LoopResult:
    flow_path = str(workdir / "killflows.py")
    if not os.path.exists(flow_path):
        Path(flow_path).write_text(FLOW_SOURCE)
    os.environ.setdefault("AWF_KILL_LOG", os.devnull)  # the parent's warm-up run
    result = LoopResult(name)
    started = time.monotonic()
    reference, took = _reference(workdir, flow_path, name)
    tag = f"{name}-{rng.randrange(1 << 30)}"
    store, log, out = (str(workdir / f"{tag}.{ext}") for ext in ("db", "log", "json"))
    while True:
        result.children += 1
        pid = _fork_run(flow_path, name, store, log, out)
        killed = False
        if result.kills < max_kills and time.monotonic() - started < budget_s:
            time.sleep(rng.uniform(0, took * 1.3))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        if killed:
            result.kills += 1
            problem = _check_store(store)
            if problem is not None:
                result.problems.append(f"after kill {result.kills}: {problem}")
                break
            continue
        if status != 0:
            error = Path(out + ".error")
            result.problems.append(error.read_text() if error.exists() else f"status {status}")
            break
        done = json.loads(Path(out).read_text())
        result.problems.extend(_compare(name, reference, done, log))
        problem = _check_store(store)
        if problem is not None:
            result.problems.append(problem)
        if result.kills >= max_kills or time.monotonic() - started >= budget_s:
            break
        # Next round on a fresh store: more kills at other points.
        tag = f"{name}-{rng.randrange(1 << 30)}"
        store, log, out = (str(workdir / f"{tag}.{ext}") for ext in ("db", "log", "json"))
    result.seconds = time.monotonic() - started
    return result


def _compare(name: str, reference: dict[str, Any], done: dict[str, Any], log: str) -> list[str]:
    problems = []
    if done["status"] != reference["status"]:
        problems.append(f"{name}: status {done['status']} != {reference['status']}")
        return problems
    if done["output"]["values"] != reference["output"]["values"]:
        problems.append(
            f"{name}: output {done['output']['values']} != {reference['output']['values']}"
        )
    last: dict[str, str] = {}
    runs_after: dict[str, list[str]] = {}
    lines = Path(log).read_text().splitlines() if os.path.exists(log) else []
    for line in lines:
        path, _, nonce = line.partition("|")
        last[path] = nonce
        runs_after.setdefault(path, []).append(nonce)
    for nonce in done["output"]["nonces"]:
        owner = next((p for p, nonces in runs_after.items() if nonce in nonces), None)
        if owner is None:
            problems.append(f"{name}: checkpointed nonce {nonce} never logged")
        elif last[owner] != nonce:
            after = runs_after[owner][runs_after[owner].index(nonce) + 1 :]
            problems.append(f"{name}: {owner} ran {len(after)} more time(s) after its checkpoint")
    return problems


def run_many(
    *, budget_s: float, min_kills: int, seed: int = 0, workdir: Path | None = None
) -> list[LoopResult]:
    """Kill loops over every flow in turn until `min_kills` kills or the budget is spent."""
    rng = random.Random(seed)
    results: list[LoopResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        where = workdir or Path(tmp)
        started = time.monotonic()
        per_flow = max(1, -(-min_kills // len(FLOWS)))
        while sum(r.kills for r in results) < min_kills:
            left = budget_s - (time.monotonic() - started)
            if left <= 0:
                break
            for i, name in enumerate(FLOWS):
                left = budget_s - (time.monotonic() - started)
                if left <= 0:
                    break
                # A fair share of what is left for each flow still to go in this round: on a
                # loaded machine the first flows would otherwise spend it all, and the last
                # ones never be killed at all.
                share = left / (len(FLOWS) - i)
                results.append(kill_loop(where, name, budget_s=share, max_kills=per_flow, rng=rng))
    return results
