"""Flows a new user writes, with a bug planted or none, through `awf-sim chaos`: each planted
bug is found and named where it is, and each correct flow passes (exit 0). Every case here
was misjudged once: a missed bug or a false alarm."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from awf_sim.chaos import CHAOS_JSON_SCHEMA
from awf_sim.cli import app

runner = CliRunner()


def chaos(flow: Path, *args: str) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Domain .* replaces", UserWarning)
        return runner.invoke(app, ["chaos", str(flow), "--json", *args])


def report(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(data, CHAOS_JSON_SCHEMA)
    return data


def violations(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for w in data["workflows"] for v in w["violations"]]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# The timeout branch of a wait crashes on the None it leaves: the outcome of a run whose
# event comes too late may differ by design, but not by an AttributeError.
TIMEOUT_BRANCH = """
from awf_sim import Domain, Workflow

Note = Domain("NuNote")


@Note.method()
async def send(who, args, ctx):
    return True


@Workflow(
    "nu-approval",
    examples=[{"id": "e1"}],
    events=[{"type": "decision", "payload": {"approved": True}, "after": "1 hour"}],
)
async def approval(wf, p):
    await wf.NuNote(p["id"]).send()
    try:
        decision = await wf.wait_for("decide", type="decision", timeout="1 day")
    except Exception:
        decision = None
    return {"approved": decision.get("approved")}
"""


def test_a_crash_in_the_timeout_branch_is_found_with_its_line(tmp_path: Path) -> None:
    flow = write(tmp_path, "approval.py", TIMEOUT_BRANCH)
    result = chaos(flow)
    assert result.exit_code == 1, result.output
    (v,) = violations(report(result))
    assert v["invariant"] == "replay-equivalence"
    assert v["key"] == "decide"
    assert "times out" in v["message"]
    assert "AttributeError" in v["message"]
    line = TIMEOUT_BRANCH.splitlines().index('    return {"approved": decision.get("approved")}')
    assert v["where"] == f"{flow}:{line + 1}"
    assert v["plan"] == [{"kind": "event-withheld", "type": "decision"}]
    assert "force_event_timeout('decide')" in v["hint"]
    # The replay command gives the same finding.
    again = chaos(flow, "--workflow", "nu-approval", "--replay", v["token"])
    assert again.exit_code == 1
    (w,) = violations(report(again))
    assert (w["invariant"], w["key"], w["where"]) == ("replay-equivalence", "decide", v["where"])


def test_a_timeout_branch_that_handles_the_timeout_passes(tmp_path: Path) -> None:
    fixed = TIMEOUT_BRANCH.replace(
        'decision.get("approved")', 'decision.get("approved") if decision else False'
    )
    result = chaos(write(tmp_path, "approval.py", fixed))
    assert result.exit_code == 0, result.output
    assert violations(report(result)) == []


# A step's catch-all fallback crashes after the step fails for good (retries used up).
EXHAUSTED_BRANCH = """
from awf_sim import Domain, Workflow

Quote = Domain("NuQuote")


@Quote.method(retries={"limit": 1, "delay": "1 second"})
async def fetch(sku, args, ctx):
    return {"price": 3}


@Workflow("nu-quote", examples=[{"sku": "A"}])
async def quote(wf, p):
    try:
        q = await wf.NuQuote(p["sku"]).fetch()
    except Exception:
        q = {}
    return {"price": q["price"] * 2}
"""


def test_a_crash_after_retries_are_used_up_is_found(tmp_path: Path) -> None:
    result = chaos(write(tmp_path, "quote.py", EXHAUSTED_BRANCH))
    assert result.exit_code == 1, result.output
    found = violations(report(result))
    assert [(v["invariant"], v["key"]) for v in found] == [("replay-equivalence", "NuQuote.fetch")]
    assert "fails for good" in found[0]["message"]
    assert "KeyError" in found[0]["message"]


# Two gathered steps insert into a table numbered by SQLite (INTEGER PRIMARY KEY), each
# idempotently (a UNIQUE idempotency key). A fault that delays one lets the other insert
# first: the same rows under other numbers, as on Cloudflare; not a repeated effect.
GATHER = """
import asyncio

from awf_sim import Database, Domain, Workflow

DATABASE = Database(schema=\"\"\"
CREATE TABLE sent (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE, who TEXT, what TEXT, at INTEGER);
\"\"\")

Notify = Domain("NuNotify")


@Notify.method()
async def email(who, args, ctx):
    import time

    await ctx.db.execute(
        "INSERT OR IGNORE INTO sent (key, who, what, at) VALUES (?, ?, 'email', ?)",
        [ctx.idempotency_key, who, int(time.time() * 1000)],
    )
    return True


@Notify.method()
async def sms(who, args, ctx):
    await ctx.db.execute(
        "INSERT OR IGNORE INTO sent (key, who, what) VALUES (?, ?, 'sms')",
        [ctx.idempotency_key, who],
    )
    return True


@Workflow("nu-fanout", examples=[{"who": "ana"}])
async def fanout(wf, p):
    a, b = await asyncio.gather(wf.NuNotify(p["who"]).email(), wf.NuNotify(p["who"]).sms())
    return {"a": a, "b": b}
"""


def test_gathered_idempotent_inserts_in_another_order_pass(tmp_path: Path) -> None:
    result = chaos(write(tmp_path, "fanout.py", GATHER))
    assert result.exit_code == 0, result.output
    assert violations(report(result)) == []


def test_a_gathered_insert_that_is_not_idempotent_is_still_found(tmp_path: Path) -> None:
    broken = GATHER.replace(
        "\"INSERT OR IGNORE INTO sent (key, who, what) VALUES (?, ?, 'sms')\",\n"
        "        [ctx.idempotency_key, who],",
        "\"INSERT INTO sent (who, what) VALUES (?, 'sms')\", [who],",
    )
    assert broken != GATHER
    result = chaos(write(tmp_path, "fanout.py", broken))
    assert result.exit_code == 1, result.output
    found = violations(report(result))
    assert [(v["invariant"], v["key"]) for v in found] == [("idempotent-effects", "NuNotify.sms")]
    assert any('extra row {"id": 3' in line for line in found[0]["difference"])


# A step that adds to a counter (not idempotent) and is retried after a timeout: the finding
# names the step and the repeated write, and nothing blames the transient error that chaos
# itself injected into a later attempt.
COUNTER = """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    schema="CREATE TABLE points (user TEXT PRIMARY KEY, n INTEGER NOT NULL);",
    rows={"points": [{"user": "u1", "n": 0}]},
)

Points = Domain("NuPoints")


@Points.method()
async def add(user, args, ctx):
    await ctx.db.execute("UPDATE points SET n = n + ? WHERE user = ?", [args["n"], user])
    return True


@Points.method()
async def read(user, args, ctx):
    return (await ctx.db.query_one("SELECT n FROM points WHERE user = ?", [user]))["n"]


@Workflow("nu-loyalty", examples=[{"user": "u1"}])
async def loyalty(wf, p):
    await wf.NuPoints(p["user"]).add(n=5)
    return {"points": await wf.NuPoints(p["user"]).read()}
"""


def test_an_injected_transient_error_is_not_blamed_on_the_step(tmp_path: Path) -> None:
    result = chaos(write(tmp_path, "loyalty.py", COUNTER))
    assert result.exit_code == 1, result.output
    (v,) = violations(report(result))
    assert (v["invariant"], v["key"]) == ("idempotent-effects", "NuPoints.add")
    assert "points.n for u1: expected 5, got 10" in v["difference"]
    related = json.dumps(v["related"])
    assert "injected by awf-sim chaos" not in related


# A step returns a fresh uuid4: inside a step that is the right place for it (checkpointed,
# read back on every replay), in this process and in any other.
UUID_IN_STEP = """
import uuid

from awf_sim import Domain, Workflow

Ids = Domain("NuIds")


@Ids.method()
async def make(x, args, ctx):
    return str(uuid.uuid4())


@Workflow("nu-ids", examples=[{"x": 1}])
async def ids(wf, p):
    made = await wf.NuIds(p["x"]).make()
    await wf.sleep("settle", "1 minute")
    return {"id": made}
"""


def test_a_uuid_made_in_a_step_is_not_a_determinism_violation(tmp_path: Path) -> None:
    result = chaos(write(tmp_path, "ids.py", UUID_IN_STEP))
    assert result.exit_code == 0, result.output
    assert violations(report(result)) == []


# A step counts calls in a module-level list: state kept in the process, which a replay in
# another isolate does not have, and which a step run twice bumps twice.
SHARED_STATE = """
from awf_sim import Domain, Workflow

SEEN = []

Reg = Domain("NuReg")


@Reg.method()
async def register(x, args, ctx):
    SEEN.append(x)
    return len(SEEN)


@Workflow("nu-shared", examples=[{"x": "k"}])
async def shared(wf, p):
    return {"n": await wf.NuReg(p["x"]).register()}
"""


def test_a_step_that_keeps_state_in_a_module_variable_is_found(tmp_path: Path) -> None:
    flow = write(tmp_path, "shared.py", SHARED_STATE)
    result = chaos(flow, "--seed", "3")
    assert result.exit_code == 1, result.output
    data = report(result)
    (v,) = violations(data)
    assert (v["invariant"], v["key"]) == ("determinism", "NuReg.register")
    assert "SEEN (shared.py)" in v["message"]
    line = SHARED_STATE.splitlines().index("@Reg.method()")  # where the handler is defined
    assert v["where"] == f"{flow}:{line + 1}"
    assert v["plan"] == []
    # The replay command shows it again, and two jobs report what one does.
    again = chaos(flow, "--workflow", "nu-shared", "--replay", v["token"])
    assert [(w["invariant"], w["key"]) for w in violations(report(again))] == [
        ("determinism", "NuReg.register")
    ]
    two = report(chaos(flow, "--seed", "3", "--jobs", "2"))
    assert {**two, "jobs": 1} == {**data, "jobs": 1}


def test_module_state_that_the_outcome_does_not_depend_on_passes(tmp_path: Path) -> None:
    # A log of calls (as a test double keeps) changes, but no run ends otherwise for it.
    logged = SHARED_STATE.replace("return len(SEEN)", "return x")
    result = chaos(write(tmp_path, "shared.py", logged))
    assert result.exit_code == 0, result.output
    assert violations(report(result)) == []


def test_a_negative_seed_is_a_seed_like_any_other(tmp_path: Path) -> None:
    # It used to end in "FaultPlanError: fault 7 (reseed) 'seed' must be >= 0, got -4".
    flow = write(tmp_path, "loyalty.py", COUNTER)
    result = chaos(flow, "--seed", "-5")
    assert result.exit_code == 1, result.output
    data = report(result)
    assert data["seed"] == -5
    (v,) = violations(data)
    assert (v["invariant"], v["key"]) == ("idempotent-effects", "NuPoints.add")
    assert "--seed -5 --replay" in v["replay"]
    again = chaos(flow, "--workflow", "nu-loyalty", "--seed", "-5", "--replay", v["token"])
    assert [(w["invariant"], w["key"]) for w in violations(report(again))] == [
        ("idempotent-effects", "NuPoints.add")
    ]


# The workflow body picks a branch with `random`: one bug, whichever step each lifetime asks
# for. A later fault that makes a third lifetime take the first branch again is that bug too.
RANDOM_BRANCH = """
import random

from awf_sim import Domain, Workflow

Route = Domain("NuRoute")


@Route.method()
async def left(x, args, ctx):
    return "left"


@Route.method()
async def right(x, args, ctx):
    return "right"


@Workflow("nu-branchy", examples=[{"x": 1}])
async def branchy(wf, p):
    await wf.sleep("start", "1 minute")
    if random.random() < 0.5:
        r = await wf.NuRoute(p["x"]).left()
    else:
        r = await wf.NuRoute(p["x"]).right()
    await wf.sleep("end", "1 minute")
    return {"r": r}
"""


def test_a_branch_on_random_is_one_finding(tmp_path: Path) -> None:
    flow = write(tmp_path, "branchy.py", RANDOM_BRANCH)
    result = chaos(flow)
    assert result.exit_code == 1, result.output
    (v,) = violations(report(result))
    assert v["invariant"] == "determinism"
    assert len(v["plan"]) == 1
    assert v["plan"][0]["kind"] == "reseed"
    related = {(r["invariant"], r["key"]) for r in v["related"]}
    assert ("determinism", "NuRoute.left" if v["key"] == "NuRoute.right" else "NuRoute.right") in (
        related
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Domain .* replaces", UserWarning)
        text = runner.invoke(app, ["chaos", str(flow)]).stdout
    assert "chaos: 1 violation found" in text


def _help(command: str) -> str:
    """The help text as words: rich's boxes and line breaks taken out."""
    out = runner.invoke(app, [command, "--help"]).stdout
    return " ".join(out.replace("│", " ").split())


def test_help_says_what_the_exit_codes_and_input_mean() -> None:
    # --input said "default: first example" (awf-sim run's default) where chaos checks every
    # example, and neither command's help said what its exit codes mean.
    text = _help("chaos")
    assert "Exit 0 when no invariant is broken, 1 on violations" in text
    assert "2 on bad usage or input" in text
    assert "first example" not in text
    assert "checked instead of the examples (default: every example)" in text
    text = _help("replay")
    assert "Exit 0 when the code follows the history; 1 where it diverges" in text
    assert "2 on bad usage or input" in text


# Two waits share the event type "vote": a late sender swaps which vote each wait takes, and a
# duplicated vote is taken by the second wait. Both are reported as what they are, not as a
# step that writes twice or an outcome changed by clocks or module state.
TWO_VOTES = """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(schema="CREATE TABLE votes (id INTEGER PRIMARY KEY, v TEXT);")

Votes = Domain("NuVotes")


@Votes.method()
async def record(x, args, ctx):
    await ctx.db.execute(
        "INSERT OR IGNORE INTO votes (id, v) VALUES (?, ?)", [args["n"], args["v"]]
    )
    return True


@Workflow(
    "nu-votes",
    examples=[{"x": 1}],
    events=[
        {"type": "vote", "payload": {"v": "yes"}, "after": "1 hour"},
        {"type": "vote", "payload": {"v": "no"}, "after": "2 hours"},
    ],
)
async def votes(wf, p):
    a = await wf.wait_for("first", type="vote", timeout="1 day")
    await wf.NuVotes(p["x"]).record(n=1, v=a["v"])
    b = await wf.wait_for("second", type="vote", timeout="1 day")
    await wf.NuVotes(p["x"]).record(n=2, v=b["v"])
    return {"votes": [a["v"], b["v"]]}
"""


def test_waits_that_share_an_event_type_are_reported_as_such(tmp_path: Path) -> None:
    result = chaos(write(tmp_path, "votes.py", TWO_VOTES))
    assert result.exit_code == 1, result.output
    found = {(v["invariant"], v["key"]): v for v in violations(report(result))}
    assert set(found) == {("replay-equivalence", "output"), ("events-delivered", "vote")}
    swapped = found["replay-equivalence", "output"]
    assert swapped["plan"] == [{"kind": "event-late", "type": "vote"}]
    assert (
        "wait first took 'vote' event 2, in the fault-free run event 1" in (swapped["difference"])
    )
    assert "share the event type 'vote'" in swapped["hint"]
    assert "module state" not in swapped["hint"]
    duplicated = found["events-delivered", "vote"]
    assert {r["invariant"] for r in duplicated["related"]} >= {"idempotent-effects"}


def test_waits_with_their_own_event_types_pass(tmp_path: Path) -> None:
    fixed = (
        TWO_VOTES.replace(
            '{"type": "vote", "payload": {"v": "yes"}', '{"type": "vote-1", "payload": {"v": "yes"}'
        )
        .replace(
            '{"type": "vote", "payload": {"v": "no"}', '{"type": "vote-2", "payload": {"v": "no"}'
        )
        .replace('"first", type="vote"', '"first", type="vote-1"')
        .replace('"second", type="vote"', '"second", type="vote-2"')
    )
    assert fixed.count('"vote-1"') == 2
    assert fixed.count('"vote-2"') == 2
    result = chaos(write(tmp_path, "votes.py", fixed))
    assert result.exit_code == 0, result.output
    assert violations(report(result)) == []


# State kept in the process in other shapes than a plain list: each used to pass unseen.
_KEPT_STATE = {
    "counter": (
        "import collections\nSEEN = collections.Counter()",
        "SEEN[x] += 1\n    return SEEN[x]",
    ),
    "defaultdict": (
        "import collections\nSEEN = collections.defaultdict(list)",
        "SEEN[x].append(1)\n    return len(SEEN[x])",
    ),
    "own-object": (
        "class Tally:\n    def __init__(self):\n        self.n = 0\n\n\nSEEN = Tally()",
        "SEEN.n += 1\n    return SEEN.n",
    ),
    "own-slots-object": (
        "class Tally:\n    __slots__ = ('n',)\n\n    def __init__(self):\n        self.n = 0\n\n\n"
        "SEEN = Tally()",
        "SEEN.n += 1\n    return SEEN.n",
    ),
    "itertools-count": ("import itertools\nSEEN = itertools.count(1)", "return next(SEEN)"),
    "class-attribute": (
        "class SEEN:\n    calls = 0",
        "SEEN.calls += 1\n    return SEEN.calls",
    ),
}


def _kept_state_flow(declare: str, body: str) -> str:
    return SHARED_STATE.replace("SEEN = []", declare).replace(
        "    SEEN.append(x)\n    return len(SEEN)", f"    {body}"
    )


@pytest.mark.parametrize("kind", sorted(_KEPT_STATE))
def test_state_kept_in_a_counter_an_object_or_an_iterator_is_found(
    tmp_path: Path, kind: str
) -> None:
    flow = write(tmp_path, "kept.py", _kept_state_flow(*_KEPT_STATE[kind]))
    result = chaos(flow, "--seed", "3")
    assert result.exit_code == 1, result.output
    (v,) = violations(report(result))
    assert (v["invariant"], v["key"]) == ("determinism", "NuReg.register")
    what = "class attribute SEEN.calls" if kind == "class-attribute" else "variable SEEN"
    assert f"{what} (kept.py)" in " ".join(v["message"].split())


# A mutable default and a variable a handler made by a factory closes over: state kept in the
# process as much as a module-level list.
DEFAULT_STATE = SHARED_STATE.replace("SEEN = []\n", "").replace(
    "async def register(x, args, ctx):\n    SEEN.append(x)",
    "async def register(x, args, ctx, _seen=[]):\n    SEEN = _seen\n    SEEN.append(x)",
)
CLOSURE_STATE = SHARED_STATE.replace("SEEN = []\n", "").replace(
    "@Reg.method()\nasync def register(x, args, ctx):\n    SEEN.append(x)\n    return len(SEEN)",
    "def counter():\n    seen = []\n\n    async def register(x, args, ctx):\n"
    "        seen.append(x)\n        return len(seen)\n\n    return register\n\n\n"
    'Reg.method(name="register")(counter())',
)


@pytest.mark.parametrize(
    ("flow_text", "phrase"),
    [
        (DEFAULT_STATE, "the default value of _seen in register() (kept.py)"),
        (CLOSURE_STATE, "the variable seen that counter.<locals>.register() closes over (kept.py)"),
    ],
    ids=["default", "closure"],
)
def test_state_kept_in_a_default_or_a_closure_is_found(
    tmp_path: Path, flow_text: str, phrase: str
) -> None:
    assert flow_text != SHARED_STATE
    flow = write(tmp_path, "kept.py", flow_text)
    result = chaos(flow, "--seed", "3")
    assert result.exit_code == 1, result.output
    (v,) = violations(report(result))
    assert (v["invariant"], v["key"]) == ("determinism", "NuReg.register")
    assert phrase in " ".join(v["message"].split())


def test_an_object_of_the_flows_own_class_that_the_outcome_does_not_depend_on_passes(
    tmp_path: Path,
) -> None:
    declare, _ = _KEPT_STATE["own-object"]
    flow = write(tmp_path, "kept.py", _kept_state_flow(declare, "SEEN.n += 1\n    return x"))
    result = chaos(flow)
    assert result.exit_code == 0, result.output
    assert violations(report(result)) == []


def test_state_kept_in_a_helper_module_of_the_users_own_is_found(tmp_path: Path) -> None:
    # The handler calls bump() of a module beside the flow file; the Counter lives there.
    helpers = f"kept_helpers_{abs(hash(str(tmp_path)))}"
    write(
        tmp_path,
        f"{helpers}.py",
        "import collections\n\nCOUNTS = collections.Counter()\n\n\n"
        "def bump(x):\n    COUNTS[x] += 1\n    return COUNTS[x]\n",
    )
    flow_text = SHARED_STATE.replace("SEEN = []\n", f"from {helpers} import bump\n").replace(
        "    SEEN.append(x)\n    return len(SEEN)", "    return bump(x)"
    )
    flow = write(tmp_path, "kept.py", flow_text)
    result = chaos(flow, "--seed", "3")
    assert result.exit_code == 1, result.output
    (v,) = violations(report(result))
    assert (v["invariant"], v["key"]) == ("determinism", "NuReg.register")
    assert f"module-level variable COUNTS ({helpers}.py)" in " ".join(v["message"].split())


# A flow's HTTP is a stand-in for a service outside the process: a fake that numbers what it
# receives keeps state across runs as the real service would. Not state kept in the process.
FAKE_SERVICE = """
from awf_sim import Domain, Workflow

DECLARE

Mail = Domain("NuMail")


@Mail.method()
async def send(x, args, ctx):
    response = await ctx.http.post(
        "https://mail.example.com/send", headers={"Idempotency-Key": ctx.idempotency_key}
    )
    return response.json()["id"]


@Workflow("nu-mail", examples=[{"x": "k"}])
async def mail(wf, p):
    return {"id": await wf.NuMail(p["x"]).send()}
"""
_FAKES = {
    "object": "class FakeMailer:\n    def __init__(self):\n        self.sent = 0\n\n"
    "    def __call__(self, request):\n        import httpx\n\n        self.sent += 1\n"
    "        return httpx.Response(200, json={'id': self.sent})\n\n\nHTTP = FakeMailer()",
    "class-attribute": "class FakeMailer:\n    sent = 0\n\n    def __call__(self, request):\n"
    "        import httpx\n\n        FakeMailer.sent += 1\n"
    "        return httpx.Response(200, json={'id': FakeMailer.sent})\n\n\nHTTP = FakeMailer()",
    "function-default": "def HTTP(request, _sent=[]):\n    import httpx\n\n"
    "    _sent.append(1)\n    return httpx.Response(200, json={'id': len(_sent)})",
}


@pytest.mark.parametrize("kind", sorted(_FAKES))
def test_the_state_of_the_flows_fake_http_service_is_not_state_kept_in_the_process(
    tmp_path: Path, kind: str
) -> None:
    flow = write(tmp_path, "mail.py", FAKE_SERVICE.replace("DECLARE", _FAKES[kind]))
    result = chaos(flow, "--seed", "3")
    assert [v["invariant"] for v in violations(report(result))] == [], result.output


def test_state_passed_between_steps_in_environment_variables_is_found(tmp_path: Path) -> None:
    name = f"AWF_TEST_SEEN_{abs(hash(str(tmp_path)))}"
    flow_text = SHARED_STATE.replace("SEEN = []\n", "import os\n").replace(
        "    SEEN.append(x)\n    return len(SEEN)",
        f"    n = int(os.environ.get({name!r}, '0')) + 1\n    os.environ[{name!r}] = str(n)\n"
        "    return n",
    )
    try:
        result = chaos(write(tmp_path, "env.py", flow_text), "--seed", "3")
    finally:
        os.environ.pop(name, None)
    assert result.exit_code == 1, result.output
    (v,) = violations(report(result))
    assert (v["invariant"], v["key"]) == ("determinism", "NuReg.register")
    assert "environment variables (os.environ)" in " ".join(v["message"].split())
