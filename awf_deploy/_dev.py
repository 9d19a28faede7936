"""`awf-deploy dev FLOW.py`: the flow's Worker bundle on the real runtime, as a local server.

What `wrangler dev` does for a JavaScript Worker (it cannot run a Python Worker offline): the
bundle's Python on real Pyodide with the vendored Workers SDK, Miniflare's Workflows engine and
D1 (the harness of `_harness.py`), in real time, with the Worker's HTTP API on
127.0.0.1:PORT. Outbound HTTP is answered by the flow's `HTTP` mock when it has one, else by the
network; `ctx.ai` by the flow's AI provider, else the simulator's DeterministicAI (Workers AI
has no offline model).

State (D1, the engine's instances) lives in `--persist DIR`, or in a temporary folder removed on
exit; either way it survives rebuilds. D1 is seeded from the flow's `DATABASE` only when it has
none of the flow's tables. The flow file and the sibling modules it bundles are polled; a change
rebuilds and reloads the bundle, and a rebuild that fails keeps the last good one serving.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from awf_sim.flow import FlowError, FlowFile, load_flow

from ._bundle import DB_BINDING, BuildError, Bundle, build_bundle, write_bundle
from ._harness import (
    BundleImportError,
    HarnessError,
    HttpAnswer,
    RealRuntime,
    check_installed,
    flow_http,
    seed_statements,
)
from .errors import AwfDeployError

__all__ = ["DEFAULT_PORT", "DevError", "DevServer"]

DEFAULT_PORT = 8787
POLL_SECONDS = 0.5
STATE_FILE = "awf-dev-instances.json"
# Generated or copied into every bundle: not the user's files.
_GENERATED = ("entry.py", "awf_runtime.py")
# httpx hands back decoded bodies: these headers would describe the encoded one.
_DROPPED_HEADERS = {"content-encoding", "content-length", "transfer-encoding", "connection"}


class DevError(AwfDeployError):
    """The dev server cannot start as asked (port in use, ...): one line, exit code 2."""


def _say(line: str) -> None:
    sys.stderr.write(f"awf-deploy dev: {line}\n")
    sys.stderr.flush()


@dataclass
class _Build:
    flow: FlowFile
    bundle: Bundle
    watched: dict[Path, float]


def network_http(client: httpx.Client) -> HttpAnswer:
    """Outbound HTTP from the Worker answered by the real network (no HTTP mock in the flow)."""

    def answer(
        method: str, url: str, headers: list[list[str]], body: bytes | None
    ) -> tuple[int, Any, bytes]:
        sent = [(k, v) for k, v in headers if k.lower() not in ("host", "content-length")]
        response = client.request(method, url, headers=sent, content=body)
        kept = [[k, v] for k, v in response.headers.items() if k.lower() not in _DROPPED_HEADERS]
        return response.status_code, kept, response.content

    return answer


def flow_tables(schema: str) -> set[str]:
    """The tables a flow's `DATABASE` schema creates."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(schema)
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    except sqlite3.Error:
        return set()
    finally:
        db.close()
    return {str(name) for (name,) in rows}


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise DevError(
                    f"port {port} on 127.0.0.1 is in use: stop what listens there, "
                    "or pass another --port"
                ) from None
            raise DevError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt while serving, even when SIGINT came in
    ignored (a shell starts background commands so)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class DevServer:
    """One dev session: build, load, serve, watch; `run()` until Ctrl-C (returns the exit
    code). Build errors at start (FlowError, BuildError), DevError and HarnessError propagate."""

    def __init__(
        self,
        flow_path: str,
        *,
        port: int = DEFAULT_PORT,
        persist: str | None = None,
        name: str | None = None,
        say: Callable[[str], None] = _say,
    ) -> None:
        self.flow_path = Path(flow_path)
        self.port = port
        self.persist = Path(persist).resolve() if persist else None
        self.name = name
        self.say = say
        self.runtime: RealRuntime | None = None
        self._tmp: Path | None = None
        self._slot = 0
        self._good: tuple[_Build, Path] | None = None
        self._network = httpx.Client(timeout=30.0, follow_redirects=False)

    # -- building ---------------------------------------------------------------------------------

    def _forget_siblings(self) -> None:
        # load_flow re-executes the flow file; the sibling modules it imports are cached in
        # sys.modules and must be imported afresh too.
        folder = self.flow_path.resolve().parent
        for mod_name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if file and Path(file).resolve().parent == folder:
                del sys.modules[mod_name]

    def build(self) -> _Build:
        from awf_sim.dsl import isolated_registries

        self._forget_siblings()
        with isolated_registries(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flow = load_flow(self.flow_path)
            bundle = build_bundle(self.flow_path, name=self.name, flow=flow)
        folder = self.flow_path.resolve().parent
        watched: dict[Path, float] = {}
        for rel in (self.flow_path.name, *bundle.modules):
            if rel in _GENERATED or rel.startswith("awf_sim/"):
                continue
            candidate = folder / rel
            if candidate.is_file():
                watched[candidate] = candidate.stat().st_mtime
        return _Build(flow, bundle, watched)

    def _load(self, built: _Build) -> tuple[Path, str]:
        """Write the bundle into the slot the last good bundle does not use and load it;
        returns its folder and what was done to D1."""
        assert self.runtime is not None
        assert self._tmp is not None
        target = write_bundle(built.bundle, self._tmp / f"bundle-{self._slot}")
        self._answer_for(built)
        self.runtime.load(built.bundle, target, persist=self._state_dir())
        self._slot = 1 - self._slot
        return target, self._seed(built)

    def _answer_for(self, built: _Build) -> None:
        """What answers the bundle's outbound HTTP and `ctx.ai`."""
        assert self.runtime is not None
        http = built.flow.http
        self.runtime.http = flow_http(http) if http is not None else network_http(self._network)
        self.runtime.ai = self._ai(built.flow)

    @staticmethod
    def _ai(flow: FlowFile) -> Any:
        if flow.ai is not None:  # load_flow keeps only a provider
            return flow.ai
        from awf_sim.testing import create_test_context

        # the simulator's deterministic answers: Workers AI has no offline model
        return create_test_context().ai

    def _state_dir(self) -> Path:
        if self.persist is not None:
            return self.persist
        assert self._tmp is not None
        return self._tmp / "state"

    def _seed(self, built: _Build) -> str:
        """Seed D1 from the flow's DATABASE when it has none of its tables; says what it did."""
        assert self.runtime is not None
        database = built.flow.database
        if not built.bundle.uses_db or database is None:
            return "not used"
        wanted = flow_tables(getattr(database, "schema", "") or "")
        existing = set(self.runtime.call("tables", binding=DB_BINDING))
        if wanted & existing:
            kept = f"kept the existing database ({len(existing)} tables)"
            missing = wanted - existing
            if not missing:
                return kept
            # A table added to DATABASE while dev runs (or since --persist kept the state):
            # created, so the new code does not meet "no such table" in the kept database.
            self.runtime.call(
                "seed", binding=DB_BINDING, statements=seed_statements(database, only=missing)
            )
            return f"{kept}; created {', '.join(sorted(missing))} from DATABASE"
        self.runtime.call("seed", binding=DB_BINDING, statements=seed_statements(database))
        return f"seeded from DATABASE ({len(wanted)} tables)"

    # -- running ----------------------------------------------------------------------------------

    def _make_persist_folder(self) -> None:
        if self.persist is None:
            return
        if self.persist.exists() and not self.persist.is_dir():
            raise DevError(f"--persist {self.persist} is a file, not a folder; pass a folder")
        try:
            self.persist.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DevError(
                f"--persist {self.persist}: cannot create it ({exc.strerror or exc}); "
                "pass a folder you can write to"
            ) from None

    def run(self) -> int:
        """Serve until Ctrl-C (0) or until the harness dies (1)."""
        check_port_free(self.port)
        built = self.build()  # before starting Node: a flow error is one line, fast
        self._make_persist_folder()
        check_installed()
        for warning in built.bundle.warnings:
            if "D1 database id" not in warning:  # dev has its own D1
                self.say(f"warning: {warning}")
        with _signals_as_interrupt():
            try:
                self._tmp = Path(tempfile.mkdtemp(prefix="awf-dev-"))
                self.say("starting Pyodide and Miniflare ...")
                self.runtime = RealRuntime(timeout=120).start()
                folder, d1 = self._load(built)
                self._good = (built, folder)
                try:
                    self.runtime.call(
                        "serve",
                        port=self.port,
                        log=True,
                        stateFile=str(self._state_dir() / STATE_FILE),
                    )
                except HarnessError as exc:
                    if "EADDRINUSE" in str(exc):
                        raise DevError(
                            f"port {self.port} on 127.0.0.1 is in use: stop what listens "
                            "there, or pass another --port"
                        ) from None
                    raise
                self._banner(built, d1)
                return self._watch()
            except KeyboardInterrupt:
                return 0
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: still clean
                self.close()

    def close(self) -> None:
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            with contextlib.suppress(Exception):
                runtime.close()
            self.say("stopped")
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._network.close()

    def _banner(self, built: _Build, d1: str) -> None:
        bundle, url = built.bundle, f"http://127.0.0.1:{self.port}"
        runtime = self.runtime
        assert runtime is not None
        lines = [
            f"{bundle.name} ({self.flow_path}) on real Pyodide {runtime.pyodide_version} "
            "with Miniflare's Workflows engine and D1, in real time",
            f"  URL        {url}   (GET / lists the workflows)",
        ]
        for wf in bundle.workflows:
            base = f"{url}/workflows/{wf.name}/instances"
            lines += [
                f"  workflow {wf.name}:",
                f"    POST {base}[?id=ID]   start one (JSON body: its params)",
                f"    GET  {base}/<id>   its status and output",
                f"    POST {base}/<id>/events/<type>   send an event (JSON body: payload)",
                f"    GET  {base}   the instances this dev server has seen",
            ]
            if wf.schedule:
                lines.append(
                    f"    cron {wf.schedule!r} is not fired by the dev server: start it by hand"
                )
        state = (
            f"{self.persist} (instances and D1 survive a restart)"
            if self.persist is not None
            else "a temporary folder, removed on exit (--persist DIR keeps it)"
        )
        lines.append(f"  state      {state}")
        lines.append(f"  D1         {d1}")
        http = "the flow's HTTP mock" if built.flow.http is not None else "the real network"
        lines.append(f"  HTTP       outbound requests go to {http}")
        if bundle.uses_ai:
            ai = (
                "the flow's AI provider"
                if built.flow.ai is not None
                else "awf_sim's DeterministicAI"
            )
            lines.append(f"  AI         {ai} (Workers AI has no offline model)")
        names = ", ".join(p.name for p in built.watched)
        lines.append(f"  watching   {names}: a change rebuilds and reloads")
        lines.append("Ctrl-C to stop")
        for line in lines:
            self.say(line)

    def _changed(self, watched: dict[Path, float]) -> bool:
        for path, mtime in watched.items():
            try:
                if path.stat().st_mtime != mtime:
                    return True
            except OSError:
                return True
        return False

    def _watch(self) -> int:
        assert self._good is not None
        watched = dict(self._good[0].watched)
        while True:
            time.sleep(POLL_SECONDS)
            runtime = self.runtime
            proc = runtime._proc if runtime is not None else None
            if proc is None or proc.poll() is not None:
                code = proc.returncode if proc is not None else None
                if code in (0, None, -signal.SIGINT):  # Ctrl-C reached Node first
                    return 0
                self.say(f"the real-runtime harness stopped (exit code {code})")
                return 1
            if not self._changed(watched):
                continue
            time.sleep(0.1)  # let an editor finish writing
            watched = self._rebuild(watched)

    def _rebuild(self, watched: dict[Path, float]) -> dict[Path, float]:
        """Rebuild and reload; on failure say why in one line and keep the last good bundle.
        Returns the files (and their mtimes) to watch next."""
        now = {p: (p.stat().st_mtime if p.exists() else 0.0) for p in watched}
        try:
            built = self.build()
        except (FlowError, BuildError) as exc:
            self.say(f"rebuild failed, still serving the last good bundle: {exc}")
            return now
        except Exception as exc:
            self.say(
                f"rebuild failed, still serving the last good bundle: {type(exc).__name__}: {exc}"
            )
            return now
        # A warning the last good bundle did not have (an import the Worker will lack) is
        # said before the reload, whose failure it may explain.
        assert self._good is not None
        for warning in built.bundle.warnings:
            if warning not in self._good[0].bundle.warnings and "D1 database id" not in warning:
                self.say(f"warning: {warning}")
        try:
            folder, d1 = self._load(built)
        # Said once the last good bundle is back: a request sent on reading "still serving"
        # got a 500 ("this bundle was unloaded") while it was being reloaded.
        except BundleImportError as exc:
            served = self._reload_good()
            self.say(f"the new bundle failed at import in {exc.module} ({exc}); {served}")
            return {**now, **built.watched}
        except HarnessError as exc:
            self.say(f"reload failed ({exc}); {self._reload_good()}")
            return {**now, **built.watched}
        self._good = (built, folder)
        created = f"; D1: {d1.split('; ', 1)[1]}" if "; created " in d1 else ""
        self.say(
            f"rebuilt and reloaded {self.flow_path.name} (bundle {built.bundle.sha256[:12]})"
            + created
        )
        return dict(built.watched)

    def _reload_good(self) -> str:
        """Load the last good bundle again; what is served now, said for the log line."""
        assert self._good is not None
        assert self.runtime is not None
        built, folder = self._good
        try:
            self._answer_for(built)
            self.runtime.load(built.bundle, folder, persist=self._state_dir())
        except HarnessError as exc:
            return f"reloading the last good bundle failed too ({exc}): restart `awf-deploy dev`"
        return "still serving the last good bundle"
