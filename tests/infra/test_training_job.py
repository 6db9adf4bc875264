"""infra/components/training_job.py: the cloud training job's role."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import resources

pytestmark = [pytest.mark.slow, pytest.mark.infra]


# --- the cloud training job's role ----------------------------------------------------------
def test_the_training_role_writes_candidates_but_never_latest(raw: dict[str, Any]) -> None:
    roles = {
        k: r
        for k, r in resources(raw, "AWS::IAM::Role").items()
        if "sagemaker.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    }
    ((role_id, role),) = roles.items()
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    policies = [
        p
        for p in resources(raw, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    statements = {
        s["Sid"]: s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]
    }
    text = json.dumps

    deny = statements["NeverLatest"]
    assert deny["Effect"] == "Deny" and "s3:PutObject" in deny["Action"]
    assert text(deny["Resource"]).endswith('/models/latest/*"]]}')
    writes = statements["WriteCandidatesAndOutput"]
    assert writes["Action"] == "s3:PutObject"
    assert sorted(r["Fn::Join"][1][-1] for r in writes["Resource"]) == [
        "/models/*",
        "/sagemaker/output/*",
    ]
    assert "/data/cifar10.tar" in text(statements["ReadDataAndSource"]["Resource"])
    assert statements["ListTheDataChannel"]["Condition"]["StringLike"]["s3:prefix"]
    # --corrections: reviewers' labels in the uploads bucket, read and listed, nothing else there
    assert text(statements["ReadReviewersLabels"]["Resource"]).endswith('/labels/*"]]}')
    assert statements["ListReviewersLabels"]["Condition"]["StringLike"]["s3:prefix"] == ["labels/*"]
    image = text(statements["PullTheTensorFlowImage"]["Resource"])
    assert ":763104351884:repository/tensorflow-training" in image
    for statement in statements.values():  # no wildcard actions anywhere
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert all("*" not in a for a in actions), statement["Sid"]
    assert "TrainingRoleArn" in raw["Outputs"]
