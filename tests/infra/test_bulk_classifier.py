"""infra/components/bulk_classifier.py: the Distributed Map over the uploads bucket."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.conftest import resources

pytestmark = [pytest.mark.slow, pytest.mark.infra]


# --- bulk classification ---------------------------------------------------------------------
def test_bulk_classification_is_a_distributed_map_over_the_uploads_bucket(
    synthesised: dict[str, Any],
) -> None:
    (machine,) = [
        m
        for k, m in resources(synthesised["raw"], "AWS::StepFunctions::StateMachine").items()
        if k.startswith("BulkClassifier")
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "<" + json.dumps(p) + ">" for p in parts)
    definition = json.loads(re.sub(r"<\{[^>]*\}>", "X", text))
    (state,) = definition["States"].values()
    assert state["Type"] == "Map"
    assert state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert state["ItemReader"]["Resource"].endswith(":states:::s3:listObjectsV2")
    assert state["ItemReader"]["Parameters"]["Prefix.$"] == "$.prefix"
    assert state["ItemBatcher"]["MaxItemsPerBatch"] == 50
    assert state["MaxConcurrency"] == 20 and state["ToleratedFailurePercentage"] == 1
    assert state["ResultWriter"]["Parameters"]["Prefix"] == "bulk-reports/"
    (task,) = state["ItemProcessor"]["States"].values()
    assert "UploadClassifierRolloutLive" in json.dumps(parts)  # the drop folder's live alias
    assert any(r["ErrorEquals"] == ["States.TaskFailed"] for r in task["Retry"])
    # Throttling on a small account is waited out with backoff, not counted as failure.
    (throttled,) = [
        r for r in task["Retry"] if "Lambda.TooManyRequestsException" in r["ErrorEquals"]
    ]
    assert throttled["BackoffRate"] >= 2 and throttled["MaxAttempts"] >= 6
    assert throttled["JitterStrategy"] == "FULL"
    assert task["Retry"].index(throttled) == 0  # before the general retrier, which would match
    outputs = synthesised["raw"]["Outputs"]
    assert "BulkStateMachine" in outputs
