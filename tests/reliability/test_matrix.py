"""The bad-input matrix: flows, CLI arguments, stores, inputs, durations, HTTP responses.

Every case runs a CLI in-process and asserts its exit code, exactly one error line on stderr (a
`  hint:` line may follow it), no traceback, the API token never printed, and, where something
was already done (a checkpoint, a finished store), that it is still there. HTTP cases talk to a
hostile server on 127.0.0.1 (`_hostile`), which stops by itself.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sqlite3
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from awf_deploy.cli import app as deploy_app
from awf_sim.cli import app as sim_app

from . import _hostile as h
from .conftest import TOKEN, check_failure, error_lines

runner = CliRunner()
# Every case writes its own flow file, each defining Domain "D": the registry's warning about a
# replaced Domain is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Domain 'D' defined at:UserWarning")

GOOD_FLOW = """
from awf_sim import Domain, Workflow

async def add(ctx, args, c):
    return {"n": ctx["n"] + 1}

D = Domain("D", {"add": add})

@Workflow("w", examples=[{"n": 1}])
async def w(wf, p):
    a = await wf.D({"n": p["n"]}).add()
    return await wf.D(a).add()
"""


def write(
    tmp_path: Path, name: str, text: str | bytes, replace: tuple[str, str] | None = None
) -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        text = textwrap.dedent(text)
        if replace is not None:
            text = text.replace(*replace)
        path.write_text(text)
    return str(path)


def sim(*args: str) -> Any:
    return runner.invoke(sim_app, list(args))


def deploy(*args: str) -> Any:
    return runner.invoke(deploy_app, list(args))


def run_or_chaos(command: str, flow: str, *extra: str) -> Any:
    if command == "chaos":
        return sim("chaos", flow, "--runs", "1", "--max-faults", "1", *extra)
    return sim("run", flow, *extra)


# -- inputs: --input ----------------------------------------------------------------------

BAD_INPUTS = {
    "empty": "",
    "whitespace": "   ",
    "truncated-object": '{"n": 1',
    "trailing-garbage": '{"n": 1} x',
    "single-quotes": "{'n': 1}",
    "bare-word": "hello",
    "trailing-comma": '{"n": 1,}',
    "nested-deeper-than-100": "[" * 101 + "]" * 101,
    "nested-100000-lists": "[" * 100_000 + "]" * 100_000,
    "nested-100000-objects": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "lone-high-surrogate": '{"n": "\\ud800"}',
    "lone-low-surrogate-key": '{"\\udc00": 1}',
    "surrogate-in-list": '["ok", "\\udfff"]',
    "NaN": '{"n": NaN}',
    "Infinity": '{"n": Infinity}',
    "minus-Infinity": "-Infinity",
    "overflowing-float": '{"n": 1e999}',
    "control-character-in-string": '{"n": "a\x01b"}',
    "unterminated-string": '{"n": "abc',
    "only-a-bracket": "]",
}


@pytest.mark.parametrize("command", ["run", "chaos"])
@pytest.mark.parametrize("text", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, command: str, text: str) -> None:
    flow = write(tmp_path, "flow.py", GOOD_FLOW)
    result = run_or_chaos(command, flow, "--input", text)
    check_failure(result, 2, prefix="awf-sim: --input")


# -- inputs: --input-file -----------------------------------------------------------------

BAD_FILES: dict[str, bytes | None] = {
    "invalid-utf8": b'{"n": "\xff\xfe"}',
    "latin1": '{"n": "café"}'.encode("latin-1"),
    "utf16": '{"n": 1}'.encode("utf-16"),
    "empty": b"",
    "binary": bytes(range(256)),
    "deep": b"[" * 200_000 + b"]" * 200_000,
    "surrogate-escape": b'{"n": "\\ud83d"}',
    "too-large": b'{"n": "' + b"x" * (16 * 1024 * 1024) + b'"}',
    "missing": None,
}


@pytest.mark.parametrize("command", ["run", "chaos"])
@pytest.mark.parametrize("content", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_input_file_is_one_line_and_exit_2(
    tmp_path: Path, command: str, content: bytes | None
) -> None:
    flow = write(tmp_path, "flow.py", GOOD_FLOW)
    path = str(tmp_path / "input.json")
    if content is not None:
        Path(path).write_bytes(content)
    result = run_or_chaos(command, flow, "--input-file", path)
    check_failure(result, 2, prefix="awf-sim: --input-file")
    if content is not None:
        assert Path(path).read_bytes() == content  # the file is left as it was


@pytest.mark.parametrize("command", ["run", "chaos"])
def test_input_file_that_is_a_directory(tmp_path: Path, command: str) -> None:
    flow = write(tmp_path, "flow.py", GOOD_FLOW)
    result = run_or_chaos(command, flow, "--input-file", str(tmp_path))
    check_failure(result, 2, prefix="awf-sim: --input-file")


@pytest.mark.parametrize("command", ["run", "chaos"])
def test_input_and_input_file_together(tmp_path: Path, command: str) -> None:
    flow = write(tmp_path, "flow.py", GOOD_FLOW)
    data = write(tmp_path, "in.json", '{"n": 1}')
    result = run_or_chaos(command, flow, "--input", '{"n": 1}', "--input-file", data)
    check_failure(result, 2, prefix="awf-sim:", must_say="not both")


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    flow = write(tmp_path, "flow.py", GOOD_FLOW)
    data = write(tmp_path, "in.json", b'\xef\xbb\xbf{"n": 5}')
    result = sim("run", flow, "--input-file", data, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["output"] == {"n": 7}


# -- CLI arguments: replay tokens -----------------------------------------------------------


def _j(data: bytes) -> str:
    return "j" + base64.urlsafe_b64encode(data).decode().rstrip("=")


def _z(data: bytes) -> str:
    return "z" + base64.urlsafe_b64encode(zlib.compress(data)).decode().rstrip("=")


BAD_TOKENS = {
    "empty": "",
    "one-letter": "z",
    "wrong-prefix": "x" + "A" * 10,
    "not-base64": "z!!!!",
    "z-not-zlib": "z" + base64.urlsafe_b64encode(b"not zlib").decode(),
    "j-not-json": _j(b"{{{"),
    "j-object": _j(b'{"kind": "timeout"}'),
    "j-number": _j(b"42"),
    "j-invalid-utf8": _j(b'["\xff"]'),
    "j-deep": _j(b"[" * 50_000 + b"]" * 50_000),
    "z-deep": _z(b"[" * 500_000 + b"]" * 500_000),
    "z-bomb": _z(b"[" + b" " * (64 * 1024 * 1024) + b"]"),
    "unknown-kind": _j(b'[["no-such-fault", "A.b"]]'),
    "wrong-arity": _j(b'[["crash-before-step"]]'),
    "item-is-number": _j(b"[1, 2, 3]"),
    "item-is-object": _j(b'[{"kind": 1}]'),
    "huge-attempt": _j(b'[["timeout", "D.add", 1e999]]'),
    "very-long-token": "z" + "A" * 100_000,
}


@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_bad_replay_token_is_one_line_and_exit_2(tmp_path: Path, token: str) -> None:
    flow = write(tmp_path, "flow.py", GOOD_FLOW)
    result = sim("chaos", flow, "--replay", token)
    line = check_failure(result, 2, prefix="awf-sim:")
    assert len(line) < 2000


# -- CLI arguments: awf-deploy JSON options and settings -----------------------------------

BAD_PARAMS = {
    "not-json": "{oops",
    "deep": "[" * 100_000 + "]" * 100_000,
    "deep-objects": '{"a":' * 5_000 + "1" + "}" * 5_000,
    "lone-surrogate": '{"x": "\\ud800"}',
    "NaN": "NaN",
    "Infinity": '{"x": Infinity}',
    "empty": "",
}


@pytest.mark.parametrize("params", BAD_PARAMS.values(), ids=BAD_PARAMS.keys())
def test_bad_trigger_params_are_one_line_and_exit_2(cf_env: Any, params: str) -> None:
    cf_env("http://127.0.0.1:9/client/v4")  # never reached: the input is refused first
    result = deploy("trigger", "shop", "--params", params)
    check_failure(result, 2, prefix="awf-deploy: --params")


@pytest.mark.parametrize("payload", BAD_PARAMS.values(), ids=BAD_PARAMS.keys())
def test_bad_event_payload_is_one_line_and_exit_2(cf_env: Any, payload: str) -> None:
    cf_env("http://127.0.0.1:9/client/v4")
    result = deploy("send-event", "shop", "i-1", "approved", "--payload", payload)
    check_failure(result, 2, prefix="awf-deploy: --payload")


BAD_BASE_URLS = {
    "no-scheme": "api.cloudflare.com/client/v4",
    "ftp": "ftp://api.cloudflare.com/client/v4",
    "no-host": "https://",
    "words": "not a url at all",
    "bad-ipv6": "https://[::1/client/v4",
    "token-pasted": TOKEN,
}


@pytest.mark.parametrize("url", BAD_BASE_URLS.values(), ids=BAD_BASE_URLS.keys())
def test_invalid_base_url_is_one_line_and_exit_2(cf_env: Any, url: str) -> None:
    cf_env(url)
    result = deploy("instances", "shop")
    check_failure(result, 2, prefix="awf-deploy:", must_say="base URL")


def test_unreachable_base_url_is_one_line_and_exit_1(cf_env: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cf_env(f"http://127.0.0.1:{port}/client/v4")
    result = deploy("instances", "shop")
    check_failure(result, 1, prefix="awf-deploy:")


# -- durations and schedules ----------------------------------------------------------------

BAD_DURATIONS = [
    "ten seconds",
    "-5 seconds",
    "1.5.5 minutes",
    "",
    " ",
    "1e999 seconds",
    "nan seconds",
    "5 секунд",
    "5\u00a0seconds",
    "seconds",
]


@pytest.mark.parametrize("duration", BAD_DURATIONS)
def test_bad_step_timeout_is_refused_when_the_flow_loads(tmp_path: Path, duration: str) -> None:
    flow = write(
        tmp_path,
        "flow.py",
        f"""
        from awf_sim import Domain, Workflow

        async def add(ctx, args, c):
            return 1

        D = Domain("D", {{"add": {{"handler": add, "timeout": {duration!r}}}}})

        @Workflow("w")
        async def w(wf, p):
            return await wf.D({{}}).add()
        """,
    )
    result = sim("run", flow)
    if result.exit_code == 0:
        pytest.fail(f"{duration!r} was accepted as a timeout")
    check_failure(result, 2, prefix="awf-sim:")


@pytest.mark.parametrize("duration", ["-1 seconds", "366 days", "2 years", "nonsense", ""])
def test_bad_sleep_errors_the_instance_and_keeps_the_step_before(
    tmp_path: Path, duration: str
) -> None:
    flow = write(
        tmp_path,
        "flow.py",
        f"""
        from awf_sim import Domain, Workflow

        async def add(ctx, args, c):
            return {{"n": 1}}

        D = Domain("D", {{"add": add}})

        @Workflow("w")
        async def w(wf, p):
            await wf.D({{}}).add()
            await wf.sleep("nap", {duration!r})
            return "done"
        """,
    )
    result = sim("run", flow, "--json")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len(error_lines(result.stderr)) <= 1
    data = json.loads(result.stdout)
    assert data["status"] == "errored"
    assert any(e["kind"] == "checkpoint" and e["path"] == "D.add" for e in data["timeline"])


BAD_SCHEDULES = [
    "every blue moon",
    "61 * * * *",
    "* * * *",
    "* * * * * * *",
    "Monday at 25:00",
    "*/0 * * * *",
    "",
    "every -5 minutes",
]


@pytest.mark.parametrize("schedule", BAD_SCHEDULES)
def test_bad_schedule_is_refused_when_the_flow_loads(tmp_path: Path, schedule: str) -> None:
    flow = write(
        tmp_path,
        "flow.py",
        f"""
        from awf_sim import Workflow

        async def report(wf, p):
            return 1

        W = Workflow("w").every({schedule!r}).run(report)
        """,
    )
    result = sim("run", flow)
    check_failure(result, 2, prefix="awf-sim:")


# -- flows ------------------------------------------------------------------------------------

BROKEN_FLOWS: dict[str, str | bytes] = {
    "syntax-error": "def (:\n",
    "import-error": "import no_such_module_for_awf\n",
    "raises-on-import": "raise RuntimeError('boom at import')\n",
    "no-workflows": "x = 1\n",
    "invalid-utf8-source": b"x = '\xff\xfe'\n",
    "null-bytes": b"x = 1\x00\n",
    "bad-workflow-name": "from awf_sim import Workflow\nW = Workflow('has space')\n",
    "bad-retries": (
        "from awf_sim import Domain\n"
        "async def h(c, a, x):\n    return 1\n"
        "D = Domain('D', {'h': {'handler': h, 'retries': {'limit': -1}}})\n"
    ),
    "recursion-on-import": "def f():\n    return f()\nf()\n",
}


@pytest.mark.parametrize("source", BROKEN_FLOWS.values(), ids=BROKEN_FLOWS.keys())
@pytest.mark.parametrize("command", ["run", "chaos"])
def test_broken_flow_is_one_line_and_exit_2(tmp_path: Path, command: str, source: Any) -> None:
    flow = write(tmp_path, "flow.py", source)
    result = run_or_chaos(command, flow)
    check_failure(result, 2, prefix="awf-sim:")


@pytest.mark.parametrize(
    "flow",
    ["missing.py", "not-python.txt", "."],
    ids=["missing", "not-python", "directory"],
)
def test_flow_path_that_is_not_a_flow(tmp_path: Path, flow: str) -> None:
    if flow == "not-python.txt":
        write(tmp_path, flow, GOOD_FLOW)
    result = sim("run", str(tmp_path / flow))
    check_failure(result, 2, prefix="awf-sim:")


def test_unknown_workflow_name(tmp_path: Path) -> None:
    flow = write(tmp_path, "flow.py", GOOD_FLOW)
    result = sim("run", flow, "--workflow", "nope")
    check_failure(result, 2, prefix="awf-sim:", must_say="nope")


FAILING_STEPS = {
    "raises": "raise ValueError('bad thing')",
    "returns-a-set": "return {1, 2}",
    "returns-an-object": "return object()",
    "returns-over-1MiB": "return 'x' * (1024 * 1024 + 10)",
    "returns-nan": "return float('nan')",
    "returns-deep-nesting": ("v = []\n    for _ in range(5000):\n        v = [v]\n    return v"),
    "unknown-domain": "return await wf_missing()",
}


@pytest.mark.parametrize("body", FAILING_STEPS.values(), ids=FAILING_STEPS.keys())
def test_failing_second_step_errors_the_instance_and_keeps_the_first(
    tmp_path: Path, body: str
) -> None:
    """The instance ends errored (exit 1), the first step's checkpoint is in the store."""
    flow = write(
        tmp_path,
        "flow.py",
        """
        from awf_sim import Domain, Workflow

        async def first(ctx, args, c):
            return {"kept": True}

        async def second(ctx, args, c):
            BODY

        async def wf_missing():
            raise LookupError("no such domain")

        RETRIES = {"limit": 1, "delay": "1 second"}
        D = Domain("D", {"first": first, "second": {"handler": second, "retries": RETRIES}})

        @Workflow("w")
        async def w(wf, p):
            await wf.D({}).first()
            return await wf.D({}).second()
        """,
        replace=("BODY", body),
    )
    store = str(tmp_path / "store.db")
    result = sim("run", flow, "--json", "--store", store)
    out = result.stdout + result.stderr
    assert result.exit_code == 1, out
    assert "Traceback" not in out
    assert len(error_lines(result.stderr)) <= 1
    data = json.loads(result.stdout)
    assert data["status"] == "errored"
    assert any(e["kind"] == "checkpoint" and e["path"] == "D.first" for e in data["timeline"])
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("value", ["'\\ud800'", "{'\\udc00': ['\\udfff']}"])
@pytest.mark.parametrize("json_out", [True, False])
def test_a_lone_surrogate_in_a_result_passes_through_as_on_cloudflare(
    tmp_path: Path, value: str, json_out: bool
) -> None:
    """JavaScript strings hold lone surrogates, so Cloudflare stores them; the engine's size
    check counts them and the CLI prints them escaped instead of crashing."""
    flow = write(
        tmp_path,
        "flow.py",
        """
        from awf_sim import Domain, Workflow

        async def odd(ctx, args, c):
            return VALUE

        D = Domain("D", {"odd": odd})

        @Workflow("w")
        async def w(wf, p):
            return await wf.D({}).odd()
        """,
        replace=("VALUE", value),
    )
    store = str(tmp_path / "store.db")
    result = sim("run", flow, "--store", store, *(["--json"] if json_out else []))
    out = result.stdout + result.stderr
    assert result.exit_code == 0, (out, result.exception)
    assert "Traceback" not in out
    assert "\\ud" in out.lower()
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- the network guard: a handler that tries every way out ---------------------------------

ESCAPES = {
    "socket-connect": ("with socket.socket() as s:\n        s.connect(('127.0.0.1', PORT))"),
    "raw-_socket": (
        "import _socket\n"
        "    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n"
        "    try:\n"
        "        s.connect(('127.0.0.1', PORT))\n"
        "    finally:\n"
        "        s.close()"
    ),
    "connect_ex": "with socket.socket() as s:\n        s.connect_ex(('127.0.0.1', PORT))",
    "create_connection": "socket.create_connection(('127.0.0.1', PORT), timeout=2).close()",
    "udp-sendto": (
        "with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
        "        s.sendto(b'x', ('127.0.0.1', UDP))"
    ),
    "udp-sendmsg": (
        "with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
        "        s.sendmsg([b'x'], [], 0, ('127.0.0.1', UDP))"
    ),
    "thread": (
        "import threading\n"
        "    errors = []\n"
        "    def go():\n"
        "        try:\n"
        "            with socket.socket() as s:\n"
        "                s.connect(('127.0.0.1', PORT))\n"
        "        except Exception as exc:\n"
        "            errors.append(exc)\n"
        "    t = threading.Thread(target=go); t.start(); t.join(5)\n"
        "    raise errors[0] if errors else RuntimeError('connected')"
    ),
    "subprocess": (
        "import subprocess, sys\n"
        "    subprocess.run([sys.executable, '-c', "
        "'import socket; socket.socket().connect((\"127.0.0.1\", PORT))'], check=True)"
    ),
    "os-system": (
        "import os, sys\n"
        "    os.system(sys.executable + ' -c \"import socket; "
        "socket.socket().connect((\\'127.0.0.1\\', PORT))\"')"
    ),
    "getaddrinfo": "socket.getaddrinfo('localhost', PORT)",
    "asyncio": ("import asyncio\n    await asyncio.open_connection('127.0.0.1', PORT)"),
}


@pytest.mark.parametrize("escape", ESCAPES.values(), ids=ESCAPES.keys())
def test_no_way_out_of_the_simulation(tmp_path: Path, escape: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.05)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.05)
    port, udp_port = listener.getsockname()[1], udp.getsockname()[1]
    code = escape.replace("PORT", str(port)).replace("UDP", str(udp_port))
    flow = write(
        tmp_path,
        "flow.py",
        """
        import socket
        from awf_sim import Domain, Workflow

        async def first(ctx, args, c):
            return 1

        async def escape(ctx, args, c):
            CODE

        ONCE = {"limit": 0, "delay": "1 second"}
        D = Domain("D", {"first": first, "escape": {"handler": escape, "retries": ONCE}})

        @Workflow("w")
        async def w(wf, p):
            await wf.D({}).first()
            return await wf.D({}).escape()
        """,
        replace=("CODE", code),
    )
    try:
        result = sim("run", flow, "--json")
        with pytest.raises(TimeoutError):
            listener.accept()[0].close()
        with pytest.raises(TimeoutError):
            udp.recvfrom(16)
    finally:
        listener.close()
        udp.close()
    assert result.exit_code == 1, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["error"]["name"] == "NetworkAccessRefused", data["error"]
    assert "mock" in data["error"]["message"]
    assert any(e["kind"] == "checkpoint" and e["path"] == "D.first" for e in data["timeline"])


# -- stores -----------------------------------------------------------------------------------


def test_a_finished_store_keeps_its_instance_when_run_again(tmp_path: Path) -> None:
    flow = write(tmp_path, "flow.py", GOOD_FLOW)
    store = str(tmp_path / "store.db")
    first = sim("run", flow, "--json", "--store", store)
    assert first.exit_code == 0
    again = sim("run", flow, "--json", "--store", store, "--input", "{")
    check_failure(again, 2, prefix="awf-sim: --input")
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    third = sim("run", flow, "--json", "--store", store)
    assert third.exit_code == 0
    assert json.loads(third.stdout)["output"] == json.loads(first.stdout)["output"]


def test_bad_input_leaves_a_store_untouched(tmp_path: Path) -> None:
    flow = write(tmp_path, "flow.py", GOOD_FLOW)
    store = tmp_path / "store.db"
    assert sim("run", flow, "--store", str(store)).exit_code == 0
    before = store.read_bytes()
    for bad in ('{"n": "\\ud800"}', "[" * 1000, "NaN"):
        check_failure(sim("run", flow, "--store", str(store), "--input", bad), 2, prefix="awf-sim:")
    assert store.read_bytes() == before


def _truncated_store(tmp_path: Path) -> str:
    flow = write(tmp_path, "seed.py", GOOD_FLOW)
    store = tmp_path / "truncated.db"
    assert sim("run", flow, "--store", str(store)).exit_code == 0
    store.write_bytes(store.read_bytes()[:1500])
    return str(store)


def _foreign_store(tmp_path: Path) -> str:
    path = tmp_path / "other-app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    return str(path)


BAD_STORES: dict[str, Callable[[Path], str]] = {
    "a-directory": lambda tmp: str(tmp),
    "in-a-missing-directory": lambda tmp: str(tmp / "missing" / "store.db"),
    "a-text-file": lambda tmp: write(tmp, "notes.db", "these are notes, not SQLite\n" * 40),
    "a-truncated-store": _truncated_store,
    "another-apps-database": _foreign_store,
}


@pytest.mark.parametrize("make", BAD_STORES.values(), ids=BAD_STORES.keys())
def test_a_store_that_is_not_awfs_is_one_line_and_exit_2(
    tmp_path: Path, make: Callable[[Path], str]
) -> None:
    flow = write(tmp_path, "flow.py", GOOD_FLOW)
    store = make(tmp_path)
    before = Path(store).read_bytes() if Path(store).is_file() else None
    check_failure(sim("run", flow, "--store", store), 2, prefix="awf-sim:")
    if before is not None:
        assert Path(store).read_bytes() == before  # nothing written into what is not ours


EXITING_HANDLERS = {
    "sys-exit-3": "raise SystemExit(3)",
    "sys-exit-text": "import sys; sys.exit('bye')",
    "keyboard-interrupt": "raise KeyboardInterrupt",
}


@pytest.mark.parametrize("body", EXITING_HANDLERS.values(), ids=EXITING_HANDLERS.keys())
def test_a_handler_that_exits_fails_its_step_not_the_judge(tmp_path: Path, body: str) -> None:
    """The code under test cannot choose the exit code: the instance errors (exit 1)."""
    flow = write(
        tmp_path,
        "flow.py",
        GOOD_FLOW.replace(
            'return {"n": ctx["n"] + 1}', body + '\n    return {"n": ctx["n"] + 1}'
        ).replace(
            'D = Domain("D", {"add": add})',
            'D = Domain("D", {"add": {"handler": add, "retries": {"limit": 0, "delay": 0}}})',
        ),
    )
    result = sim("run", flow, "--json")
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert json.loads(result.stdout)["status"] == "errored"
    assert "Traceback" not in result.stderr


def test_os_exit_in_a_handler_cannot_make_chaos_pass(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "flow.py",
        GOOD_FLOW.replace('return {"n": ctx["n"] + 1}', "import os; os._exit(0)"),
    )
    result = sim("chaos", flow, "--runs", "1", "--max-faults", "1")
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr


# -- HTTP responses from a hostile server ---------------------------------------------------


def _error_body(code: int, message: str) -> bytes:
    return json.dumps(
        {"success": False, "errors": [{"code": code, "message": message}], "messages": []}
    ).encode()


HOSTILE: dict[str, Callable[[], h.Behaviour]] = {
    **{
        f"status-{status}-envelope": (
            lambda status=status: h.respond(_error_body(1000 + status, "nope"), status)
        )
        for status in (400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503, 504)
    },
    **{
        f"status-{status}-html": (
            lambda status=status: h.respond(
                b"<html><body>" + b"<p>bad</p>\n" * 50 + b"</body></html>",
                status,
                {"Content-Type": "text/html"},
            )
        )
        for status in (400, 403, 500, 502)
    },
    "status-500-empty": lambda: h.respond(b"", 500),
    "status-400-reflects-the-token": lambda: h.respond(
        _error_body(9999, f"bad token Bearer {TOKEN}"), 400
    ),
    "200-not-json": lambda: h.respond(b"hello"),
    "200-empty": lambda: h.respond(b""),
    "200-json-array": lambda: h.respond(b"[1, 2, 3]"),
    "200-json-string": lambda: h.respond(b'"ok"'),
    "200-envelope-without-result": lambda: h.respond(b'{"success": true}'),
    "200-success-false": lambda: h.respond(_error_body(10000, "refused")),
    "200-result-wrong-type": lambda: h.respond(h.envelope("not a list")),
    "200-result-items-wrong": lambda: h.respond(h.envelope([1, 2, 3])),
    "200-deep-json": lambda: h.respond(h.nested_json(200_000)),
    "200-deep-envelope": lambda: h.respond(h.envelope(json.loads("[" * 500 + "]" * 500))),
    "400-deep-json": lambda: h.respond(h.nested_json(200_000), 400),
    "200-invalid-utf8": lambda: h.respond(b'{"success": true, "result": ["\xff\xfe"]}'),
    "200-lone-surrogate-escape": lambda: h.respond(
        b'{"success": true, "errors": [], "messages": [], "result": [{"id": "\\ud800"}]}'
    ),
    "200-huge-body": lambda: h.respond(b" " * (6 * 1024 * 1024) + b"{}"),
    "200-gzip-bomb": lambda: h.respond(
        h.gzip_bomb(512 * 1024 * 1024), headers={"Content-Encoding": "gzip"}
    ),
    "200-corrupt-gzip": lambda: h.respond(
        b"\x1f\x8b garbage", headers={"Content-Encoding": "gzip"}
    ),
    "200-brotli-unasked": lambda: h.respond(b"\x00\x01", headers={"Content-Encoding": "br"}),
    "200-trickle-body": lambda: h.trickle(0.3),
    "200-trickle-headers": lambda: h.trickle(0.3, in_headers=True),
    "silence": lambda: h.silence(5),
    "close-at-once": h.close_at_once,
    "garbage-status-line": lambda: h.respond_raw(b"NOT HTTP AT ALL\r\n\r\n"),
    "short-body": lambda: h.respond_raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{}"
    ),
}


@pytest.mark.parametrize("behaviour", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_answer_is_one_line_and_exit_1(cf_env: Any, behaviour: Any) -> None:
    with h.HostileServer(behaviour(), lifetime=20) as server:
        cf_env(server.url)
        result = deploy("instances", "shop")
    check_failure(result, 1, prefix="awf-deploy:")


@pytest.mark.parametrize(
    "name",
    ["200-trickle-body", "200-gzip-bomb", "200-deep-json", "status-500-envelope", "silence"],
)
def test_hostile_answer_to_a_trigger(cf_env: Any, name: str) -> None:
    with h.HostileServer(HOSTILE[name](), lifetime=20) as server:
        cf_env(server.url)
        result = deploy("trigger", "shop", "--params", '{"n": 1}')
    check_failure(result, 1, prefix="awf-deploy:")


def test_many_retries_stop_at_the_command_deadline(
    cf_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import awf_deploy.cli

    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "max_retries", 50)
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "request_deadline", 1.0)
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "command_deadline", 1.6)
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "sleep", lambda s: None)
    with h.HostileServer(h.silence(5), lifetime=20) as server:
        cf_env(server.url)
        result = deploy("instances", "shop")
        assert server.requests <= 3
    line = check_failure(result, 1, prefix="awf-deploy:")
    assert "command deadline" in line


def test_environment_is_not_left_dirty() -> None:
    assert os.environ.get("CLOUDFLARE_API_TOKEN") != TOKEN
