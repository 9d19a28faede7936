"""Determinism across processes: replay a finished instance in other Python processes.

Cloudflare may replay an instance in another isolate, so whatever the workflow body computes
outside steps must come out the same in another process. Some values never differ inside one
process, so no in-process fault shows them: `hash()` of a str or bytes (salted per process,
PYTHONHASHSEED), the iteration order of a set of strings (and of anything built from one: a
dict, a zip with checkpointed values), `os.getpid()`.

The check: the fault-free run is recorded in a SQLite store in this process; then, in
`CHILDREN` fresh interpreters, each with another PYTHONHASHSEED (and its own pid), the
instance is marked running again and replayed from the top against that store. A
deterministic workflow finds every step by its name and reads its checkpoint back, runs no
handler, and ends with the same status, output and error. Anything else is a `determinism`
violation, with a hint naming what the replay read (the child counts the workflow code's
calls to `hash()` on str/bytes and to `os.getpid()`).

The children need the flow file's path (they import it afresh), so only `awf-sim chaos` runs
this check; `run_campaign` without a flow path skips it.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from typing import Any

from awf_sim.chaos._diff import show, workflow_site
from awf_sim.chaos._inject import FaultHooks
from awf_sim.chaos._model import Baseline, Target, Violation
from awf_sim.chaos._run import _schedule
from awf_sim.engine import Simulator
from awf_sim.engine._calls import TERMINAL

__all__ = ["CHILDREN", "CHILD_TIMEOUT_S", "CrossProcess", "cross_process_violations"]

CHILDREN = 2  # two other hash seeds: a set of a few strings keeps its order under one by chance
CHILD_TIMEOUT_S = 120.0
_KEY = "other-process"


def _hash_seeds() -> list[str]:
    own = os.environ.get("PYTHONHASHSEED", "")
    start = int(own) + 1 if own.isdigit() else 1
    return [str(start + i) for i in range(CHILDREN)]


def _record(target: Target, base: Baseline, path: str) -> list[tuple[str, str, str, int]]:
    """Run the target fault-free into the SQLite store at `path`; the final lifetime's calls."""
    schedule, _late = _schedule(target.workflow.events, [], {})
    hooks = FaultHooks()
    sim = Simulator(world=base.world, hooks=hooks, store=path)
    try:
        inst = sim.create(target.workflow, target.params, id=target.iid)
        for at, _index, _copy, ev, _fault in schedule:
            if at > sim.now_ms:
                sim.advance(at - sim.now_ms)
            if inst.status()["status"] in TERMINAL:
                break
            inst.send_event(ev["type"], ev["payload"])
        if sim.now_ms < base.bound_ms:
            sim.run_until_done(inst, max_ms=base.bound_ms - sim.now_ms)
    finally:
        sim.close()
    return list(hooks.lifetimes[-1][1]) if hooks.lifetimes else []


class CrossProcess:
    """The replays in other processes, started at once and judged later: they run while this
    process injects faults."""

    def __init__(self, target: Target, base: Baseline, flow_path: str) -> None:
        self.target, self.base = target, base
        self._children: list[tuple[str, subprocess.Popen[str]]] = []
        self._calls: list[tuple[str, str, str, int]] = []
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        if base.obs.status not in ("complete", "errored") or base.obs.bound_hit:
            return
        self._folder = tempfile.TemporaryDirectory(prefix="awf-chaos-")
        folder = self._folder.name
        store = os.path.join(folder, "store.sqlite")
        self._calls = _record(target, base, store)
        for n, hash_seed in enumerate(_hash_seeds()):
            own = os.path.join(folder, f"replay-{n}.sqlite")  # a store serves one process
            shutil.copyfile(store, own)
            request = {
                "flow": os.path.abspath(flow_path),
                "workflow": target.workflow.name,
                "store": own,
                "iid": target.iid,
                "seed": target.seed,
            }
            env = {**os.environ, "PYTHONHASHSEED": hash_seed}
            child = subprocess.Popen(
                [sys.executable, "-m", "awf_sim.chaos._crossproc", json.dumps(request)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
            )
            self._children.append((hash_seed, child))

    def violations(self) -> list[Violation]:
        """Wait for the replays; the determinism violation they show (at most one)."""
        found: list[Violation] = []
        try:
            for hash_seed, child in self._children:
                try:
                    out, err = child.communicate(timeout=CHILD_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.communicate()
                    out, err = "", f"no result within {CHILD_TIMEOUT_S:.0f} s"
                if not found:  # one finding says it; another child would repeat it
                    v = _judge(
                        self.target, self.base, self._calls, child.returncode, out, err, hash_seed
                    )
                    if v is not None:
                        found.append(v)
        finally:
            for _seed, child in self._children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            self._children = []
            if self._folder is not None:
                self._folder.cleanup()
                self._folder = None
        return found


def cross_process_violations(target: Target, base: Baseline, flow_path: str) -> list[Violation]:
    """Replay the fault-free run in other processes; the determinism violations found."""
    return CrossProcess(target, base, flow_path).violations()


def _judge(
    target: Target,
    base: Baseline,
    calls: Sequence[tuple[str, str, str, int]],
    code: int | None,
    out: str,
    err: str,
    hash_seed: str,
) -> Violation | None:
    where = workflow_site(target.workflow)
    try:
        got: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        last = (err.strip().splitlines() or [f"exit status {code}"])[-1]
        return Violation(
            "determinism",
            _KEY,
            "the replay in another Python process did not finish: " + last[:200],
            [f"PYTHONHASHSEED={hash_seed}: {last[:200]}"],
            "The workflow replays in another process on Cloudflare; it must not depend on "
            "anything of the process that first ran it.",
            where,
        )
    diff: list[str] = []
    seen = {(k, n, c) for k, n, c in (tuple(x) for x in got["calls"])}
    missing = [(k, n) for k, _p, n, c in calls if (k, n, c) not in seen]
    for kind, name in missing[:3]:
        diff.append(f"the first process called {kind} {name}; the replay never asked for it")
    # A step that failed is not checkpointed and runs again on any replay: only a handler run
    # under a name the first process never asked for is news.
    named = {n for _k, _p, n, _c in calls}
    for path, name in [tuple(x) for x in got["ran"] if x[1] not in named][:3]:
        diff.append(f"the replay ran {path}'s handler under a new name {name}")
    obs = base.obs
    if got["status"] != obs.status:
        diff.append(f"status: first process {obs.status}, replay {got['status']}")
    # Only the order of an object's keys may differ: JSON objects are unordered.
    elif json.dumps(got["output"], sort_keys=True) != json.dumps(obs.output, sort_keys=True):
        diff.append(f"output: first process {show(obs.output)}, replay {show(got['output'])}")
    elif got["error"] != obs.error:
        diff.append(f"error: first process {show(obs.error)}, replay {show(got['error'])}")
    if not diff:
        return None
    reads = got["reads"]
    causes = []
    if reads.get("getpid"):
        causes.append(
            "it read os.getpid(), which is another number in every process that replays the "
            "instance: use wf.instance_id to tell instances apart"
        )
    if reads.get("hash"):
        causes.append(
            "it called hash() on a str or bytes, which is salted per process "
            "(PYTHONHASHSEED): use hashlib (hashlib.sha256(text.encode()).hexdigest()) or "
            "zlib.crc32 for a stable hash"
        )
    causes.append(
        "iterating a set or frozenset of strings (or a dict or list built from one, zipped "
        "with a checkpointed result) gives another order in another process: iterate "
        "sorted(the_set) instead, or compute the value inside a step (wf.do) so that it is "
        "checkpointed"
    )
    return Violation(
        "determinism",
        _KEY,
        "replayed in another Python process (PYTHONHASHSEED, pid), the workflow did "
        "something else: it is not deterministic",
        [f"replay with PYTHONHASHSEED={hash_seed}:", *diff[:6]],
        "The workflow function runs again from the top on every replay, possibly in another "
        "process; " + "; ".join(causes[:2]) + ".",
        where,
    )


# --- the child ------------------------------------------------------------------------------


def _instrument() -> dict[str, int]:
    """Count the calls user code (not the standard library, site-packages or awf_sim) makes
    to hash() on str/bytes and to os.getpid()."""
    reads = {"hash": 0, "getpid": 0}
    skip = tuple(
        p
        for p in {
            os.path.dirname(os.path.abspath(__file__)).rsplit(os.sep, 1)[0],
            sysconfig.get_paths()["stdlib"],
            sysconfig.get_paths()["purelib"],
            sysconfig.get_paths()["platlib"],
        }
        if p
    )

    def user_caller() -> bool:
        name = sys._getframe(2).f_code.co_filename
        return not name.startswith(skip) and not name.startswith("<frozen")

    real_hash, real_getpid = builtins.hash, os.getpid

    def counting_hash(value: object, /) -> int:
        if isinstance(value, str | bytes) and user_caller():
            reads["hash"] += 1
        return real_hash(value)

    def counting_getpid() -> int:
        if user_caller():
            reads["getpid"] += 1
        return real_getpid()

    builtins.hash = counting_hash
    os.getpid = counting_getpid
    return reads


def _child(request: dict[str, Any]) -> dict[str, Any]:
    from awf_sim.chaos._targets import verification_targets
    from awf_sim.engine._store import SqliteStore
    from awf_sim.flow import load_flow

    reads = _instrument()
    loaded = load_flow(request["flow"])
    workflow = loaded.pick(request["workflow"])
    (target, _n), *_ = verification_targets(loaded, workflows=[workflow], seed=request["seed"])
    store = SqliteStore(request["store"])
    try:
        meta = store.get_instance(request["iid"])
        assert meta is not None
        store.commit(
            request["iid"], meta={**meta, "status": "running", "output": None, "error": None}
        )
    finally:
        store.close()
    hooks = FaultHooks()
    sim = Simulator(world=target.world, hooks=hooks, store=request["store"])
    try:
        (inst,) = sim.recover()
        sim.run_until_done(inst, max_ms=400 * 86_400_000)
        status = inst.status()
    finally:
        sim.close()
    calls = [[k, n, c] for _kind, lifetime in hooks.lifetimes for k, _p, n, c in lifetime]
    ran = sorted(
        {(path, name) for event, _lt, path, _o, name, _c, _a in hooks.log if event == "run"}
    )
    return {
        "status": status["status"],
        "output": status["output"],
        "error": status["error"],
        "calls": calls,
        "ran": ran,
        "reads": reads,
    }


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1])), default=str))
