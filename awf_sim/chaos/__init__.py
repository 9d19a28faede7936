"""Chaos: run a workflow under every fault Cloudflare's engine can produce and check durability.

```python
from awf_sim.chaos import Target, run_campaign

result = run_campaign(Target(order_processing, params, db=DATABASE), runs=200)
for finding in result.findings:
    print(finding.violation.invariant, finding.plan, finding.violation.hint)
```

`awf-sim chaos FLOW.py` is the command-line front end; `awf_sim.assert_durable` and
`awf_sim.strategies` are the Hypothesis front end.
"""

from awf_sim._public import publish
from awf_sim.chaos._campaign import run_campaign
from awf_sim.chaos._durable import SEED_SOURCE, DurabilityViolation, assert_durable
from awf_sim.chaos._faults import (
    KINDS,
    FaultPlanError,
    decode_token,
    describe_fault,
    normalize_fault,
    normalize_plan,
    parse_kinds,
    plan_token,
)
from awf_sim.chaos._inject import FaultHooks
from awf_sim.chaos._invariants import INVARIANTS
from awf_sim.chaos._model import (
    Baseline,
    CampaignResult,
    Fault,
    Finding,
    Observation,
    Target,
    Violation,
)
from awf_sim.chaos._report import CHAOS_JSON_SCHEMA, CHAOS_JSON_VERSION, ChaosReport
from awf_sim.chaos._run import run_plan
from awf_sim.chaos._space import build_baseline
from awf_sim.chaos._targets import verification_targets
from awf_sim.engine import run_supervised

__all__ = [
    "CHAOS_JSON_SCHEMA",
    "CHAOS_JSON_VERSION",
    "INVARIANTS",
    "KINDS",
    "SEED_SOURCE",
    "Baseline",
    "CampaignResult",
    "ChaosReport",
    "DurabilityViolation",
    "Fault",
    "FaultHooks",
    "FaultPlanError",
    "Finding",
    "Observation",
    "Target",
    "Violation",
    "assert_durable",
    "build_baseline",
    "decode_token",
    "describe_fault",
    "normalize_fault",
    "normalize_plan",
    "parse_kinds",
    "plan_token",
    "run_campaign",
    "run_plan",
    "run_supervised",
    "verification_targets",
]

publish(__name__, __all__, globals())
