"""Testing workflows: test workflows with Cloudflare's modifier, handler contexts, mock data.

```python
from awf_sim.testing import create_test_workflow

def test_order():
    wf = create_test_workflow(order_processing)  # db: the flow's DATABASE unless given
    wf.modifier.mock_step_result("Payment.process", {"success": True, "chargeId": "ch_test"})
    assert wf.run({...})["status"] == "confirmed"  # a selector that matched nothing fails it
    assert "Inventory.check" in wf.steps

def test_approval():
    wf = create_test_workflow(expense_approval)
    wf.start({...})
    wf.wait_for_status("waiting")  # or wf.wait_for_step_result("Expenses.validate")
    wf.send_event("expense-decision", {"approved": True})
    assert wf.run()["status"] == "approved"
```

The pytest plugin (installed with awf) adds the fixtures `create_test_workflow` and `sim`, the
option `--awf-seed`, and a report section with the timeline of a failing test's workflows (those
of `create_test_workflow` and of the `sim` fixture).
"""

from awf_sim._public import publish
from awf_sim.engine._selectors import Selector, StepSelector
from awf_sim.sdk._db import Database, mock_database
from awf_sim.testing._context import create_test_context, createTestContext
from awf_sim.testing._modifier import Modifier, ModifierError
from awf_sim.testing._workflow import (
    TestWorkflow,
    TestWorkflowFactory,
    UnmatchedSelector,
    WorkflowFailed,
    create_test_workflow,
    createTestWorkflow,
    format_timeline,
)

__all__ = [
    "Database",
    "Modifier",
    "ModifierError",
    "Selector",
    "StepSelector",
    "TestWorkflow",
    "TestWorkflowFactory",
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
