"""infra/components/serving_function.py: the cold-start options."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.conftest import our_functions, resources, synth

pytestmark = [pytest.mark.slow, pytest.mark.infra]


# --- cold-start options ----------------------------------------------------------------------
def test_snap_start_publishes_versions_behind_a_live_alias(tmp_path: Path) -> None:
    _, raw = synth(tmp_path, snapStart="true", **{"aws:cdk:bundling-stacks": []})
    for props in our_functions(raw).values():
        assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert len(resources(raw, "AWS::Lambda::Alias")) == 2


def test_provisioned_concurrency_is_set_on_the_apis_alias(tmp_path: Path) -> None:
    _, raw = synth(tmp_path, provisionedConcurrency="2", **{"aws:cdk:bundling-stacks": []})
    configs = [
        a["Properties"].get("ProvisionedConcurrencyConfig")
        for a in resources(raw, "AWS::Lambda::Alias").values()
    ]
    assert sorted(configs, key=str) == sorted(
        [{"ProvisionedConcurrentExecutions": 2}, None], key=str
    )
    assert all("SnapStart" not in p for p in our_functions(raw).values())
