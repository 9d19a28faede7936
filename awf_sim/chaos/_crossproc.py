"""Determinism across processes: replay a finished instance in other Python processes.

Cloudflare may replay an instance in another isolate, so whatever the workflow body computes
outside steps must come out the same in another process. Some values never differ inside one
process, so no in-process fault shows them: `hash()` of a str or bytes (salted per process,
PYTHONHASHSEED), the iteration order of a set of strings (and of anything built from one: a
dict, a zip with checkpointed values), `os.getpid()`.

The check: the fault-free run is recorded in a SQLite store in this process; then, in
`CHILDREN` other interpreters, each with another PYTHONHASHSEED (and its own pid), the
instance is marked running again and replayed from the top against that store. The
interpreters (`Replayers`) serve every input of one command, so that each imports awf_sim and
the flow file once; one that dies is judged for its input and replaced for the next. A
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
import select
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from awf_sim.chaos._diff import show, workflow_site
from awf_sim.chaos._inject import FaultHooks
from awf_sim.chaos._model import Baseline, Target, Violation
from awf_sim.chaos._run import _schedule
from awf_sim.engine import Simulator
from awf_sim.engine._calls import TERMINAL
from awf_sim.engine._defaults import RUNAWAY_WAITS
from awf_sim.errors import UnawaitedStepWarning

__all__ = [
    "CHILDREN",
    "CHILD_TIMEOUT_S",
    "CROSS_PROCESS_KEY",
    "CrossProcess",
    "Replayers",
    "cross_process_violations",
]

CHILDREN = 2  # two other hash seeds: a set of a few strings keeps its order under one by chance
CHILD_TIMEOUT_S = 120.0
CROSS_PROCESS_KEY = _KEY = "other-process"


def _hash_seeds() -> list[str]:
    own = os.environ.get("PYTHONHASHSEED", "")
    start = int(own) + 1 if own.isdigit() else 1
    return [str(start + i) for i in range(CHILDREN)]


def _record(
    target: Target, base: Baseline, path: str
) -> tuple[list[tuple[str, str, str, int]], dict[str, Any]]:
    """Run the target fault-free into the SQLite store at `path`: the final lifetime's calls,
    and how that run ended (status, output, error). The replays are judged against this run,
    not the baseline: a step may return another value in each run (a uuid4 it makes) and
    still be replayed faithfully from its checkpoint."""
    schedule, _late = _schedule(target.workflow.events, [], {})
    hooks = FaultHooks()
    sim = Simulator(world=base.world, hooks=hooks, store=path, cpu_ms=target.cpu_ms)
    try:
        inst = sim.create(target.workflow, target.params, id=target.iid)
        for at, _index, _copy, ev, _fault in schedule:
            if at > sim.now_ms:
                sim.advance(at - sim.now_ms)
            if inst.status()["status"] in TERMINAL:
                break
            inst.send_event(ev["type"], ev["payload"])
        if sim.now_ms < base.bound_ms:
            sim.run_until_done(inst, max_ms=base.bound_ms - sim.now_ms, max_waits=RUNAWAY_WAITS)
        ended = inst.status()
    finally:
        sim.close()
    calls = list(hooks.lifetimes[-1][1]) if hooks.lifetimes else []
    return calls, {k: ended[k] for k in ("status", "output", "error")}


_MARK = "\x00awf-crossproc-reply "  # starts the child's reply line; user prints never do


class _Replayer:
    """One replaying interpreter with its own hash seed. It imports awf_sim and the flow once
    and answers requests, one JSON line in, one marked JSON line out, until its stdin closes."""

    def __init__(self, hash_seed: str, folder: str) -> None:
        self.hash_seed = hash_seed
        self._err = open(os.path.join(folder, f"stderr-{hash_seed}.txt"), "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            # Not `-m`: runpy would warn that the package imported this module already, and
            # that warning, not the exit status, would be the last line of a dead replayer.
            [sys.executable, "-c", "from awf_sim.chaos._crossproc import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        self._buffer = b""

    def send(self, request: dict[str, Any]) -> bool:
        """False when the process is gone (a start anew is needed)."""
        if self.proc.poll() is not None or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def reply(self, timeout: float) -> tuple[int | None, str, str]:
        """(exit status as the judge sees it, the reply line, what to show when none came)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                text = line.decode("utf-8", "replace")
                if text.startswith(_MARK):
                    got = json.loads(text[len(_MARK) :])
                    if "failed" in got:
                        return 1, "", got["failed"]
                    return 0, json.dumps(got["result"]), ""
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.stop()
                return None, "", f"no result within {timeout:.0f} s"
            chunk = os.read(fd, 65536)
            if not chunk:  # it died
                code = self.proc.wait()
                self._err.seek(0)
                err = self._err.read().decode("utf-8", "replace")
                self.stop()
                return code, "", err
            self._buffer += chunk

    def close_input(self) -> None:
        """No more requests: the process ends when it has answered the last one."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def end(self) -> None:
        """It answered every request: end it now. Its interpreter's own ending (tens of ms
        of teardown) would only keep the command waiting."""
        self.close_input()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()

    def stop(self) -> None:
        self.close_input()
        out = self.proc.stdout
        if out is not None and not out.closed and self.proc.returncode is None:
            # Its output ends when it exits: woken then, not by the polling of wait(timeout).
            deadline = time.monotonic() + 5
            fd = out.fileno()
            while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[
                0
            ]:
                if not os.read(fd, 65536):
                    break
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()


class Replayers:
    """The other processes for every input of one `awf-sim chaos`: `CHILDREN` interpreters,
    started at the first request and kept for the next inputs, so that each imports awf_sim
    and the flow once (a replay itself runs no handler and takes a few milliseconds)."""

    def __init__(self) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._live: dict[str, _Replayer] = {}

    @property
    def folder(self) -> str:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="awf-chaos-")
        return self._folder.name

    def ask(self, hash_seed: str, request: dict[str, Any]) -> _Replayer:
        """Send `request` to the replayer of `hash_seed` (started anew if it is gone)."""
        live = self._live.get(hash_seed)
        if live is None or not live.send(request):
            if live is not None:
                live.stop()
            live = self._live[hash_seed] = _Replayer(hash_seed, self.folder)
            live.send(request)
        return live

    def forget(self, hash_seed: str, gone: _Replayer) -> None:
        """`gone` gave no answer: the next request for `hash_seed` starts another."""
        if self._live.get(hash_seed) is gone:
            del self._live[hash_seed]

    def close(self) -> None:
        """No more inputs; every request was answered (each input's check reads its replies)."""
        for live in self._live.values():
            live.end()
        self._live = {}
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


class CrossProcess:
    """The replays in other processes, started at once and judged later: they run while this
    process injects faults. `replayers`: shared by the inputs of one command (closed by its
    owner); without it, this check starts its own and closes them when judged."""

    def __init__(
        self,
        target: Target,
        base: Baseline,
        flow_path: str,
        replayers: Replayers | None = None,
    ) -> None:
        self.target, self.base = target, base
        self._own = replayers is None
        self._replayers = Replayers() if replayers is None else replayers
        self._asked: list[tuple[str, _Replayer]] = []
        self._calls: list[tuple[str, str, str, int]] = []
        self._ended: dict[str, Any] = {}
        self._stores: list[str] = []
        if base.obs.status not in ("complete", "errored") or base.obs.bound_hit:
            return
        folder = tempfile.mkdtemp(prefix="input-", dir=self._replayers.folder)
        store = os.path.join(folder, "store.sqlite")
        self._calls, self._ended = _record(target, base, store)
        self._stores.append(folder)
        for n, hash_seed in enumerate(_hash_seeds()):
            own = os.path.join(folder, f"replay-{n}.sqlite")  # a store serves one process
            shutil.copyfile(store, own)
            request = {
                "flow": os.path.abspath(flow_path),
                "workflow": target.workflow.name,
                "store": own,
                "iid": target.iid,
                "seed": target.seed,
                "cpu_ms": target.cpu_ms,
            }
            self._asked.append((hash_seed, self._replayers.ask(hash_seed, request)))

    def violations(self) -> list[Violation]:
        """Wait for the replays; the determinism violation they show (at most one)."""
        found: list[Violation] = []
        try:
            for hash_seed, replayer in self._asked:
                code, out, err = replayer.reply(CHILD_TIMEOUT_S)
                if replayer.proc.poll() is not None:  # died or timed out (and was stopped)
                    self._replayers.forget(hash_seed, replayer)
                if not found:  # one finding says it; another child would repeat it
                    v = _judge(self.target, self._ended, self._calls, code, out, err, hash_seed)
                    if v is not None:
                        found.append(v)
        finally:
            self._asked = []
            for folder in self._stores:
                shutil.rmtree(folder, ignore_errors=True)
            self._stores = []
            if self._own:
                self._replayers.close()
        return found


def cross_process_violations(target: Target, base: Baseline, flow_path: str) -> list[Violation]:
    """Replay the fault-free run in other processes; the determinism violations found."""
    return CrossProcess(target, base, flow_path).violations()


def _judge(
    target: Target,
    first: dict[str, Any],
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
    status, output, error = first["status"], first["output"], first["error"]
    if got["status"] != status:
        diff.append(f"status: first process {status}, replay {got['status']}")
    # Only the order of an object's keys may differ: JSON objects are unordered.
    elif json.dumps(got["output"], sort_keys=True) != json.dumps(output, sort_keys=True):
        diff.append(f"output: first process {show(output)}, replay {show(got['output'])}")
    elif got["error"] != error:
        diff.append(f"error: first process {show(error)}, replay {show(got['error'])}")
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


# path -> (the loaded flow, what importing it read): a replayer imports each file once, and
# each replay counts the reads of that import as a fresh process would.
_FLOWS: dict[str, tuple[Any, dict[str, int]]] = {}


def _child(request: dict[str, Any], reads: dict[str, int]) -> dict[str, Any]:
    from awf_sim.chaos._targets import verification_world
    from awf_sim.engine._store import SqliteStore
    from awf_sim.flow import load_flow

    cached = _FLOWS.get(request["flow"])
    if cached is None:
        loaded = load_flow(request["flow"])
        _FLOWS[request["flow"]] = (loaded, dict(reads))
    else:
        loaded, on_import = cached
        for what, count in on_import.items():
            reads[what] += count
    loaded.pick(request["workflow"])  # the flow still defines it (recover() finds it by name)
    # Only the world: the params are the stored instance's (the examples were checked there).
    world = verification_world(loaded, request["seed"])
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
    # The budget of the campaign: a replay whose workflow body runs away ends as it did here.
    sim = Simulator(world=world, hooks=hooks, store=request["store"], cpu_ms=request["cpu_ms"])
    # At the recorded run's clock, not where its store ends (where an engine opening a store
    # goes on): only what differs between processes is judged here; clocks are clock-skew's.
    sim._loop._set_now(0)
    try:
        (inst,) = sim.recover()
        sim.run_until_done(inst, max_ms=400 * 86_400_000, max_waits=RUNAWAY_WAITS)
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
        "reads": dict(reads),
    }


def _serve() -> None:
    """Answer requests from stdin until it closes: one marked line each on the real stdout
    (what the workflow prints goes there too, unmarked)."""
    import traceback
    import warnings

    # The run this replays warned of any unawaited step already; here it would only be turned
    # into an error by PYTHONWARNINGS=error and read as a replay that did not finish.
    warnings.filterwarnings("ignore", category=UnawaitedStepWarning)
    reads = _instrument()
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        reads.update(hash=0, getpid=0)
        try:
            reply: dict[str, Any] = {"result": _child(json.loads(line), reads)}
        except Exception as exc:
            reply = {"failed": traceback.format_exception_only(exc)[-1].strip()}
        out.write(_MARK + json.dumps(reply, default=str) + "\n")
        out.flush()


if __name__ == "__main__":
    _serve()
