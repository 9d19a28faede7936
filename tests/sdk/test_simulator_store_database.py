"""`Simulator(store=path)` keeps ctx.db beside the store (`path + ".d1"`), as `awf-sim run
--store` does: an instance resumed from the store in a new process reads the rows its
checkpointed steps wrote.

Before, each Simulator started ctx.db from the spec afresh: the resumed instance rightly did
not run its checkpointed `write` step again, and its `read` step found no row.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
from awf_sim import Database, Domain, Simulator, Workflow

async def write(c, a, ctx):
    return await ctx.db.insert("notes", {"text": "from the first process"})

async def read(c, a, ctx):
    return [r["text"] for r in await ctx.db.query("SELECT text FROM notes ORDER BY id")]

Notes = Domain("Notes", {"write": write, "read": read})

@Workflow("notes")
async def notes(wf, p):
    await wf.Notes({}).write()
    await wf.wait_for("go", type="go", timeout="1 day")
    return await wf.Notes({}).read()

store, phase = sys.argv[1], sys.argv[2]
DATABASE = Database("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
with Simulator(store=store, db=DATABASE) as sim:
    if phase == "start":
        inst = sim.create(notes, {}, id="n1")
        sim.run()
    else:
        sim.register(notes)
        sim.recover()
        inst = sim.instance("n1")
        inst.send_event("go", {})
        sim.run()
    print(json.dumps(inst.status()))
"""


def _phase(script: Path, store: Path, phase: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(script), str(store), phase],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    status: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return status


def test_an_instance_resumed_in_a_new_process_reads_what_its_steps_wrote(tmp_path: Path) -> None:
    script, store = tmp_path / "notes_flow.py", tmp_path / "run.db"
    script.write_text(SCRIPT)
    assert _phase(script, store, "start")["status"] == "waiting"
    resumed = _phase(script, store, "resume")
    assert resumed["status"] == "complete"
    assert resumed["output"] == ["from the first process"]
    assert (tmp_path / "run.db.d1").is_file()
