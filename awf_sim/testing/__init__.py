"""Testing workflows: test workflows with Cloudflare's modifier, handler contexts, mock data.

```python
from awf_sim.testing import create_test_workflow, mock_database

def test_order():
    wf = create_test_workflow(OrderWorkflow, db=mock_database({"inventory": [...]}))
    wf.modifier.disable_sleeps()
    wf.modifier.mock_step_result("Payment.process", {"success": True, "chargeId": "ch_test"})
    assert wf.run({...})["status"] == "confirmed"
    assert "Inventory.check" in wf.steps
```

The pytest plugin (installed with awf) adds the fixtures `create_test_workflow` and `sim`, the
option `--awf-seed`, and a report section with the timeline of a failing test's workflows.
"""

from awf_sim._public import publish
from awf_sim.engine._selectors import StepSelector
from awf_sim.sdk._db import Database, mock_database
from awf_sim.testing._modifier import Modifier, ModifierError
from awf_sim.testing._workflow import (
    TestWorkflow,
    UnmatchedSelector,
    WorkflowFailed,
    create_test_context,
    create_test_workflow,
    createTestContext,
    createTestWorkflow,
    format_timeline,
)

__all__ = [
    "Database",
    "Modifier",
    "ModifierError",
    "StepSelector",
    "TestWorkflow",
    "UnmatchedSelector",
    "WorkflowFailed",
    "createTestContext",
    "createTestWorkflow",
    "create_test_context",
    "create_test_workflow",
    "format_timeline",
    "mock_database",
]

publish(__name__, __all__, globals())
