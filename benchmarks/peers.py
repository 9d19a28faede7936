"""Peers side by side: the same 6-step workflow on awf and its peers, in paired rounds.

    python benchmarks/peers.py [--rounds N] [--instances N] [--json] [--smoke] [--peers A,B]

The workflow: six trivial steps (validate, price, reserve, charge, ship, notify, the handlers of
benchmarks/engine.py) with a 1-day sleep before `notify`; each instance is timed from create to
complete, and every figure is wall time per instance. The rows:

  floor         the CPython floor: per step, the bare work a durable step must do (call the
                handler, JSON-encode the result, sha256 of the step's identity, a dict write;
                the sleep and the instance's output are two more such records). No engine.
  awf-memory    awf_sim.Simulator with the memory store (the sleep passes in virtual time)
  awf-sqlite    awf_sim.Simulator with the SQLite store (WAL, synchronous=NORMAL), a fresh file
                per round
  dbos-sqlite   DBOS (`pip install awf[bench]`) on SQLite at the same settings (WAL,
                synchronous=NORMAL), in a subprocess: each instance is a direct call of the
                workflow under its own workflow id, steps are @DBOS.step. DBOS cannot skip a
                durable sleep (DBOS.sleep blocks in time.sleep), so it sleeps 1 microsecond:
                the sleep's checkpoint is written, the wait is nil.
  miniflare     Cloudflare's local engine (benchmarks/miniflare_peer.mjs, the miniflare that
                tests/conformance pins), in a Node subprocess; sleeps are skipped with the
                engine's test modifier (disableSleeps); state persisted to a temporary folder,
                a fresh engine each round (started outside the timed window). The N instances
                of a round are created one after another and run concurrently in the engine.

Each round runs every peer once, in an order that rotates from round to round, so that noise
on a shared machine hits all of them alike; per row the table gives the median over rounds of
the time per instance and the median over rounds of its ratio to awf-memory in the same round.
A peer that cannot run here (DBOS not installed, Node or tests/conformance/node_modules
missing) is skipped with one line saying why. `--smoke` is a tiny run (seconds) that only
checks every peer still runs; it exits 1 if an available peer fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import os
import platform
import queue
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = 6
SLEEP = "1 day"
DBOS_SLEEP_S = 1e-6


# -- the workflow's handlers (as benchmarks/engine.py) ---------------------------------------


# The same six handlers as benchmarks/engine.py (this folder is on sys.path when run).
from engine import charge, notify, price, reserve, ship, validate  # noqa: E402


def order(iid: str) -> dict[str, Any]:
    return {
        "id": iid,
        "items": [{"sku": "ABC", "price": 9.5, "qty": 2}, {"sku": "XYZ", "price": 3.0, "qty": 1}],
        "customer": {"email": f"{iid}@example.com"},
    }


def call(coro: Any) -> Any:
    """Run a coroutine that never suspends (the handlers) to its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("handler suspended")


# -- the peers ----------------------------------------------------------------------------------


class Skip(Exception):
    """This peer cannot run here; the message says why, in one line."""


class Peer:
    name = ""
    info = ""

    def start(self) -> None: ...

    def run(self, ids: list[str]) -> float:
        """Create and complete one instance per id; return wall seconds."""
        raise NotImplementedError

    def close(self) -> None: ...


class Floor(Peer):
    name = "floor"
    info = "CPython: handler + json.dumps + sha256(step identity) + dict write per step"

    def run(self, ids: list[str]) -> float:
        orders = [order(i) for i in ids]
        store: dict[str, str] = {}
        dumps, sha256 = json.dumps, hashlib.sha256
        wake_ms = 86_400_000

        def checkpoint(iid: str, name: str, value: Any) -> None:
            key = sha256(f"{iid}/{name}/1".encode()).hexdigest()
            store[key] = dumps(value)

        gc.collect()
        t0 = time.perf_counter()
        for o in orders:
            iid = o["id"]
            checkpoint(iid, "validate", call(validate(o, {}, None)))
            total = call(price(o, {}, None))
            checkpoint(iid, "price", total)
            checkpoint(iid, "reserve", call(reserve(o, {"qty": len(o["items"])}, None)))
            checkpoint(iid, "charge", call(charge(o, {"amount": total["total"]}, None)))
            ship_info = call(ship(o, {}, None))
            checkpoint(iid, "ship", ship_info)
            checkpoint(iid, "before-notify", wake_ms)
            checkpoint(iid, "notify", call(notify(o["customer"], {"template": "confirmed"}, None)))
            store[iid] = dumps(ship_info)
        elapsed = time.perf_counter() - t0
        assert len(store) == len(orders) * (STEPS + 2)
        return elapsed


_AWF_FLOW: Any = None


def awf_flow() -> Any:
    global _AWF_FLOW
    if _AWF_FLOW is None:
        from awf_sim import Domain, Workflow

        bench = Domain(
            "PeersBench",
            {
                "validate": validate,
                "price": price,
                "reserve": reserve,
                "charge": charge,
                "ship": ship,
                "notify": notify,
            },
        )

        @Workflow("peers_bench", domains=[bench])
        async def peers_bench(wf: Any, order: Any) -> Any:
            await wf.PeersBench(order).validate()
            total = await wf.PeersBench(order).price()
            await wf.PeersBench(order).reserve(qty=len(order["items"]))
            await wf.PeersBench(order).charge(amount=total["total"])
            ship_info = await wf.PeersBench(order).ship()
            await wf.sleep("before-notify", SLEEP)
            await wf.PeersBench(order["customer"]).notify(template="confirmed")
            return ship_info

        _AWF_FLOW = peers_bench
    return _AWF_FLOW


class Awf(Peer):
    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        self.name = "awf-sqlite" if sqlite else "awf-memory"
        self.info = (
            "awf_sim.Simulator, SQLite store (WAL, synchronous=NORMAL), fresh file per round"
            if sqlite
            else "awf_sim.Simulator, memory store"
        )
        self.tmp: tempfile.TemporaryDirectory[str] | None = None
        self.count = 0

    def start(self) -> None:
        awf_flow()
        if self.sqlite:
            self.tmp = tempfile.TemporaryDirectory(prefix="awf-peers-")

    def run(self, ids: list[str]) -> float:
        from awf_sim import Simulator

        flow = awf_flow()
        orders = [order(i) for i in ids]
        store = None
        if self.tmp is not None:
            self.count += 1
            store = os.path.join(self.tmp.name, f"awf-{self.count}.db")
        gc.collect()
        with Simulator(store=store) as sim:
            t0 = time.perf_counter()
            instances = [sim.create(flow, o, id=o["id"]) for o in orders]
            sim.run()
            elapsed = time.perf_counter() - t0
            for inst in instances:
                st = inst.status()
                if st["status"] != "complete" or st["output"]["tracking"] != f"TRK-{inst.id}":
                    raise RuntimeError(f"{self.name}: {inst.id} ended {st}")
        if store is not None:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(store + suffix)
        return elapsed

    def close(self) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()


class LineServer(Peer):
    """A peer in a subprocess that answers {"ids": [...]} lines with {"ok", "seconds"}."""

    start_timeout = 120.0

    def __init__(self, per_instance_timeout: float) -> None:
        self.argv: list[str] = []
        self.per_instance_timeout = per_instance_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.ready: dict[str, Any] = {}

    def _pump(self, stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)
        if sink == self.lines.put:
            self.lines.put(None)

    def _read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name}: no answer within {timeout:.0f} s") from None
        if line is None:
            tail = "".join(self.stderr[-5:]).strip()
            raise RuntimeError(f"{self.name}: the subprocess ended: {tail}")
        if not line.startswith("{"):  # something the peer printed itself
            return self._read(timeout)
        return json.loads(line)  # type: ignore[no-any-return]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        threading.Thread(
            target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True
        ).start()
        threading.Thread(
            target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True
        ).start()
        self.ready = self._read(self.start_timeout)
        if not self.ready.get("ready"):
            raise RuntimeError(f"{self.name}: unexpected first line {self.ready}")

    def run(self, ids: list[str]) -> float:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"ids": ids}) + "\n")
        self.proc.stdin.flush()
        answer = self._read(30.0 + self.per_instance_timeout * len(ids))
        if not answer.get("ok"):
            log = os.environ.get("AWF_PEERS_LOG")
            if log:  # the subprocess's stderr, for a failure's details
                Path(log).write_text("".join(self.stderr))
            raise RuntimeError(f"{self.name}: {answer.get('error')}")
        return float(answer["seconds"])

    def close(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Dbos(LineServer):
    name = "dbos-sqlite"

    def __init__(self) -> None:
        super().__init__(per_instance_timeout=1.0)
        try:
            import importlib.metadata as md

            self.version = md.version("dbos")
        except Exception:
            raise Skip("dbos is not installed (pip install 'awf[bench]')") from None
        self.argv = [sys.executable, str(Path(__file__).resolve()), "--serve-dbos"]
        self.info = (
            f"DBOS {self.version}, SQLite (WAL, synchronous=NORMAL); DBOS.sleep cannot skip "
            f"a 1-day sleep, so DBOS.sleep({DBOS_SLEEP_S:g}) (checkpointed, no wait)"
        )

    def start(self) -> None:
        super().start()
        if not self.ready["dbos_connections_hooked"]:
            raise RuntimeError("DBOS opened no connection through the WAL/NORMAL hook")
        self.info += (
            f"; checked: journal_mode={self.ready['journal_mode']}, "
            f"synchronous={self.ready['synchronous']}"
        )


class Miniflare(LineServer):
    name = "miniflare"

    def __init__(self) -> None:
        super().__init__(per_instance_timeout=2.0)
        node = shutil.which("node")
        if node is None:
            raise Skip("node is not on PATH")
        if not (ROOT / "tests" / "conformance" / "node_modules" / "miniflare").is_dir():
            raise Skip("miniflare is not installed: cd tests/conformance && npm ci")
        self.argv = [node, str(HERE / "miniflare_peer.mjs"), "--serve"]
        self.info = "miniflare"

    def start(self) -> None:
        super().start()
        self.info = (
            f"Miniflare {self.ready['miniflare']} (Node {self.ready['node']}), sleep skipped "
            "by disableSleeps(), state on disk, fresh engine per round; a round's instances "
            "run concurrently"
        )


# -- the DBOS subprocess -----------------------------------------------------------------------


def serve_dbos() -> int:
    """Answer {"ids": [...]} lines on stdin with {"ok", "seconds"} (see Dbos)."""
    import logging

    import sqlalchemy as sa
    from dbos import DBOS, SetWorkflowID

    # The same durability as awf's SQLite store: WAL, synchronous=NORMAL, on every connection
    # DBOS opens (DBOS's own connect hook sets IMMEDIATE transactions and a busy timeout).
    hooked: list[str] = []  # the synchronous setting read back on each connection

    @sa.event.listens_for(sa.engine.Engine, "connect")
    def _pragmas(dbapi_conn: Any, record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        level = cur.execute("PRAGMA synchronous").fetchone()[0]
        hooked.append({0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[level])
        cur.close()

    tmp = tempfile.mkdtemp(prefix="awf-peers-dbos-")
    path = os.path.join(tmp, "dbos.sqlite")
    logging.getLogger("dbos").setLevel(logging.ERROR)
    DBOS(
        config={
            "name": "awf-peers",
            "system_database_url": f"sqlite:///{path}",
            "log_level": "ERROR",
            "run_admin_server": False,
        }  # type: ignore[typeddict-unknown-key]
    )

    def step(fn: Any, name: str) -> Any:
        def body(*args: Any) -> Any:
            return call(fn(*args))

        body.__name__ = body.__qualname__ = name
        return DBOS.step(name=name)(body)

    s_validate = step(validate, "validate")
    s_price = step(price, "price")
    s_reserve = step(reserve, "reserve")
    s_charge = step(charge, "charge")
    s_ship = step(ship, "ship")
    s_notify = step(notify, "notify")

    @DBOS.workflow(name="peers_bench")
    def peers_bench(o: dict[str, Any]) -> Any:
        s_validate(o, {}, None)
        total = s_price(o, {}, None)
        s_reserve(o, {"qty": len(o["items"])}, None)
        s_charge(o, {"amount": total["total"]}, None)
        ship_info = s_ship(o, {}, None)
        DBOS.sleep(DBOS_SLEEP_S)
        s_notify(o["customer"], {"template": "confirmed"}, None)
        return ship_info

    DBOS.launch()
    try:
        con = sqlite3.connect(path)  # not through SQLAlchemy: the file's own journal mode
        journal = con.execute("PRAGMA journal_mode").fetchone()[0]
        con.close()
        sync = ",".join(sorted(set(hooked))) or "unknown (no DBOS connection seen)"

        def batch(ids: list[str]) -> float:
            orders = [order(i) for i in ids]
            gc.collect()
            t0 = time.perf_counter()
            outs = []
            for o in orders:
                with SetWorkflowID(o["id"]):
                    outs.append(peers_bench(o))
            elapsed = time.perf_counter() - t0
            for o, out in zip(orders, outs, strict=True):
                if out != {"tracking": f"TRK-{o['id']}"}:
                    raise RuntimeError(f"{o['id']} returned {out}")
                if DBOS.retrieve_workflow(o["id"]).get_status().status != "SUCCESS":
                    raise RuntimeError(f"{o['id']} is not SUCCESS")
            return elapsed

        batch([f"warm-{i}" for i in range(5)])
        print(
            json.dumps(
                {
                    "ready": True,
                    "journal_mode": journal,
                    "synchronous": sync,
                    "dbos_connections_hooked": len(hooked),
                }
            ),
            flush=True,
        )
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd.get("quit"):
                break
            try:
                answer: dict[str, Any] = {"ok": True, "seconds": batch(cmd["ids"])}
            except Exception as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
    finally:
        DBOS.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


# -- the runner -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    node = None
    if shutil.which("node"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            node = subprocess.run(
                ["node", "--version"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu": model,
        "python": platform.python_version(),
        "node": node,
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="paired rounds (default 15)")
    parser.add_argument("--instances", type=int, default=100, help="instances per peer a round")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--smoke", action="store_true", help="tiny run: every peer still runs")
    parser.add_argument(
        "--peers",
        default="floor,awf-memory,awf-sqlite,dbos-sqlite,miniflare",
        help="comma-separated rows to run (default: all; ratios need awf-memory)",
    )
    parser.add_argument("--serve-dbos", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_dbos:
        return serve_dbos()
    if args.smoke:
        args.rounds, args.instances = 1, 3
    if args.rounds < 1 or args.instances < 1:
        parser.error("--rounds and --instances must be at least 1")
    asyncio.set_event_loop_policy(None)

    peers: list[Peer] = []
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    makers: list[tuple[str, Any]] = [
        ("floor", Floor),
        ("awf-memory", lambda: Awf(False)),
        ("awf-sqlite", lambda: Awf(True)),
        ("dbos-sqlite", Dbos),
        ("miniflare", Miniflare),
    ]
    wanted = {p.strip() for p in args.peers.split(",") if p.strip()}
    unknown = wanted - {name for name, _ in makers}
    if unknown:
        parser.error(f"unknown peer(s): {', '.join(sorted(unknown))}")
    for name, make in makers:
        if name not in wanted:
            continue
        try:
            peer = make()
        except Skip as why:
            skipped[name] = str(why)
            continue
        try:
            peer.start()
        except Exception as exc:
            failed[peer.name] = "could not start: " + " | ".join(str(exc).splitlines())[:500]
            peer.close()
            continue
        peers.append(peer)

    n = args.instances
    times: dict[str, list[float]] = {p.name: [] for p in peers}
    ratios: dict[str, list[float]] = {p.name: [] for p in peers}
    try:
        for r in range(-1, args.rounds):  # round -1 warms every peer up, untimed
            k = r % len(peers) if peers else 0
            order_ = peers[k:] + peers[:k]
            this: dict[str, float] = {}
            for peer in order_:
                if peer.name in failed:
                    continue
                ids = [f"r{r + 1}-{peer.name}-{i}" for i in range(n)]
                try:
                    this[peer.name] = peer.run(ids) / n
                except Exception as exc:
                    where = "warm-up round" if r < 0 else f"round {r + 1}"
                    failed[peer.name] = f"{where}: {str(exc).splitlines()[0][:300]}"
            if r < 0:
                continue
            for name, t in this.items():
                times[name].append(t)
                if "awf-memory" in this:
                    ratios[name].append(t / this["awf-memory"])
    finally:
        for peer in peers:
            peer.close()

    rows = []
    for peer in peers:
        ts, rs = times[peer.name], ratios[peer.name]
        row: dict[str, Any] = {"name": peer.name, "what": peer.info}
        if peer.name in failed:
            row.update(status="failed", reason=failed[peer.name])
        else:
            row.update(
                status="ok",
                median_us_per_instance=statistics.median(ts) * 1e6 if ts else None,
                median_ratio_to_awf_memory=statistics.median(rs) if rs else None,
                rounds_us_per_instance=[t * 1e6 for t in ts],
            )
        rows.append(row)
    for name, reason in failed.items():
        if name not in times:
            rows.append({"name": name, "status": "failed", "reason": reason})
    for name, reason in skipped.items():
        rows.append({"name": name, "status": "skipped", "reason": reason})

    result = {
        "workflow": f"{STEPS} trivial steps + a {SLEEP} sleep, create -> complete",
        "instances": n,
        "rounds": args.rounds,
        "smoke": args.smoke,
        "machine": machine(),
        "peers": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    return 1 if failed else 0


def report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(
        f"{result['workflow']}; {result['instances']} instances per peer per round, "
        f"{result['rounds']} paired rounds, medians"
    )
    print(
        f"machine: {m['cores']} cores ({m['usable_cores']} usable), {m['cpu']}; "
        f"Python {m['python']}, Node {m['node'] or 'none'}"
    )
    print()
    print(f"{'peer':<13} {'per instance':>14} {'per step':>12} {'x awf-memory':>13}")
    for row in result["peers"]:
        if row["status"] != "ok":
            print(f"{row['name']:<13} {row['status']}: {row['reason']}")
            continue
        us = row["median_us_per_instance"]
        ratio = row["median_ratio_to_awf_memory"]
        print(
            f"{row['name']:<13} {fmt_us(us):>14} {fmt_us(us / STEPS):>12} "
            f"{'' if ratio is None else f'{ratio:.2f}x':>13}"
        )
    print()
    for row in result["peers"]:
        if row["status"] == "ok":
            print(f"{row['name']:<13} {row['what']}")


def fmt_us(us: float) -> str:
    if us >= 10_000:
        return f"{us / 1000:,.1f} ms"
    if us >= 1000:
        return f"{us / 1000:,.2f} ms"
    return f"{us:,.1f} us"


if __name__ == "__main__":
    raise SystemExit(main())
