"""infra/components/retraining.py: the retraining state machine, walked branch by branch.

The definition is read from the synthesised template and run by ``tests/infra/asl.py``: its
Lambda steps are the real ``release.pipeline`` functions against moto's S3 (the gate's verdict is
given: ``tests/release/test_pipeline.py`` runs the real gate), SageMaker and CloudFormation are
stubs that answer as the services document, and notifications are collected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.infra import asl
from tests.infra.conftest import resources, statements

pytestmark = [pytest.mark.slow, pytest.mark.infra]

SERVED = "20261205-184340-default-a91c0b13"  # the repository's published model
CANDIDATE = "20261204-220138-default-874e1624"  # another published model, as the candidate
MODELS, UPLOADS = "models-bucket", "uploads-bucket"


@pytest.fixture
def auto(everything_on: dict[str, Any]) -> dict[str, Any]:
    """The stack with automatic promotion and both triggers on (template only)."""
    return everything_on


def machine_of(raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (k, v)
        for k, v in resources(raw, "AWS::StepFunctions::StateMachine").items()
        if k.startswith("Retraining")
    ]
    return found


def function_ref(raw: dict[str, Any], step: str) -> str:
    (name,) = [
        k
        for k, v in resources(raw, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == f"release.pipeline.{step}_handler"
    ]
    return f"ref:{name}"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 with the served model as latest, a candidate's files, and no labels yet."""
    import boto3
    from moto import mock_aws

    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in (MODELS, UPLOADS):
            s3.create_bucket(Bucket=bucket)
        for version in (SERVED, CANDIDATE):
            folder = ROOT / "models" / version
            for name in ("manifest.json", "model.tflite"):
                s3.put_object(
                    Bucket=MODELS, Key=f"models/{version}/{name}", Body=(folder / name).read_bytes()
                )
        s3.put_object(
            Bucket=MODELS,
            Key="models/latest/manifest.json",
            Body=(ROOT / "models" / "latest" / "manifest.json").read_bytes(),
        )
        yield s3


def label(s3: Any, n: int) -> None:
    for i in range(n):
        s3.put_object(Bucket=UPLOADS, Key=f"labels/cat/{i:04d}.png", Body=b"png")


def latest(s3: Any) -> str:
    body = s3.get_object(Bucket=MODELS, Key="models/latest/manifest.json")["Body"].read()
    return str(json.loads(body)["model_version"])


class World:
    """The services a run calls: real pipeline steps, stubbed SageMaker and CloudFormation."""

    def __init__(
        self,
        raw: dict[str, Any],
        s3: Any,
        *,
        training: str = "Completed",
        accepted: bool = True,
        rollout: tuple[str, ...] = (),
    ) -> None:
        from release import pipeline

        self.s3, self.training, self.accepted = s3, training, accepted
        self.rollout = list(rollout)
        self.messages: list[str] = []
        self.jobs: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.settings = pipeline.Settings(
            {
                "MODELS_BUCKET": MODELS,
                "UPLOADS_BUCKET": UPLOADS,
                "TRAINING_ROLE_ARN": "arn:aws:iam::123456789012:role/training",
                "TRAINING_SOURCE_URI": f"s3://{MODELS}/sagemaker/source/pipeline/sourcedir.tar.gz",
            }
        )
        self.services = {
            function_ref(raw, "check"): lambda event: pipeline.check(event, self.settings),
            function_ref(raw, "gate"): self.gate,
            function_ref(raw, "promote"): lambda event: pipeline.promote(event, self.settings),
            "sagemaker:createTrainingJob.sync": self.train,
            "sns:publish": lambda p: self.messages.append(p["Message"]) or {},
            "aws-sdk:cloudformation:updateStack": lambda p: self.updates.append(p) or {},
            "aws-sdk:cloudformation:describeStacks": self.describe,
        }

    def train(self, request: dict[str, Any]) -> dict[str, Any]:
        self.jobs.append(request)
        if self.training != "Completed":  # .sync fails the task when the job fails
            raise asl.TaskError("States.TaskFailed", '{"FailureReason": "AlgorithmError: OOM"}')
        record = json.loads(request["HyperParameters"]["candidate-record"])
        bucket, _, key = record[len("s3://") :].partition("/")
        self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"model_version": CANDIDATE}))
        return {"TrainingJobStatus": "Completed", "TrainingJobName": request["TrainingJobName"]}

    def gate(self, event: dict[str, Any]) -> dict[str, Any]:
        from release import pipeline
        from release.promote import Verdict

        assert event["served"] == SERVED
        assert pipeline.candidate_of(pipeline.Destination(f"s3://{MODELS}"), event["job"]) == (
            CANDIDATE
        )
        result = pipeline.verdict_result(
            Verdict(
                candidate=CANDIDATE,
                current=SERVED,
                candidate_accuracy=0.9170 if self.accepted else 0.9100,
                current_accuracy=0.9166,
                tolerance=0.002,
                images=10000,
                data_fingerprint="f",
                decided="2026-12-07T00:00:00+00:00",
                corrections_images=250,
                corrections_candidate=0.80,
                corrections_current=0.55,
            )
        )
        pipeline.record_verdict(pipeline.Destination(f"s3://{MODELS}"), event["job"], result)
        return result

    def describe(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"Stacks": [{"StackStatus": self.rollout.pop(0)}]}


def walk(raw: dict[str, Any], world: World, given: dict[str, Any] | None = None) -> asl.Run:
    """One run of the synthesised definition, as an execution of a state machine in moto."""
    import boto3

    sfn = boto3.client("stepfunctions")
    machines = sfn.list_state_machines()["stateMachines"]
    arn = (
        machines[0]["stateMachineArn"]
        if machines
        else sfn.create_state_machine(
            name="Cifar10Classifier-Retraining",
            definition=json.dumps({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/machine",
        )["stateMachineArn"]
    )
    this = f"{arn.replace(':stateMachine:', ':execution:')}:this-run"
    context = {"StateMachine": {"Id": arn}, "Execution": {"Id": this}}
    return asl.run(
        asl.definition_of(machine_of(raw)[1]), world.services, given or {}, context=context
    )


# --- the branches ----------------------------------------------------------------------------
def test_no_new_labels_ends_quietly_without_training(raw: dict[str, Any], aws: Any) -> None:
    world = World(raw, aws)
    done = walk(raw, world)
    assert (done.status, done.end) == ("SUCCEEDED", "NothingToLearn")
    assert world.jobs == [] and world.messages == []
    assert done.output["check"]["labels"]["new"] == 0


def test_a_failed_training_job_notifies_and_changes_nothing(raw: dict[str, Any], aws: Any) -> None:
    label(aws, 3)
    world = World(raw, aws, training="Failed")
    done = walk(raw, world)
    assert (done.status, done.end) == ("FAILED", "TrainingFailed")
    (message,) = world.messages
    assert "training job cifar10-retrain-" in message and "AlgorithmError" in message
    assert latest(aws) == SERVED


def test_a_refused_candidate_is_reported_with_the_gates_figures(
    raw: dict[str, Any], aws: Any
) -> None:
    label(aws, 3)
    world = World(raw, aws, accepted=False)
    done = walk(raw, world)
    assert (done.status, done.end) == ("SUCCEEDED", "Refused")
    (message,) = world.messages
    assert "refused" in message and "91.00% < current" in message and "nothing changed" in message
    assert latest(aws) == SERVED


def test_the_job_is_make_train_clouds_request_fine_tuning_the_served_model(
    raw: dict[str, Any], aws: Any
) -> None:
    label(aws, 3)
    world = World(raw, aws, accepted=False)
    walk(raw, world)
    (job,) = world.jobs
    passed = {k: json.loads(v) for k, v in job["HyperParameters"].items()}
    assert passed["init-from"] == f"s3://{MODELS}/models/{SERVED}/"
    assert passed["corrections"] == f"s3://{UPLOADS}/labels/"
    assert passed["sagemaker_submit_directory"].endswith(
        "sagemaker/source/pipeline/sourcedir.tar.gz"
    )
    assert job["EnableManagedSpotTraining"] is True
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("-sagemaker")


def test_a_passed_candidate_without_auto_promotion_asks_the_owner(
    raw: dict[str, Any], aws: Any
) -> None:
    label(aws, 3)
    world = World(raw, aws)
    done = walk(raw, world)
    assert (done.status, done.end) == ("SUCCEEDED", "CandidateReady")
    (message,) = world.messages
    assert f"make promote VERSION={CANDIDATE}" in message
    assert world.updates == [] and latest(aws) == SERVED
    assert "RollOut" not in asl.definition_of(machine_of(raw)[1])["States"]


def test_auto_promotion_rolls_out_then_moves_latest(auto: dict[str, Any], aws: Any) -> None:
    label(aws, 3)
    world = World(auto, aws, rollout=("UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"))
    done = walk(auto, world)
    assert (done.status, done.end) == ("SUCCEEDED", "Promoted"), done.path
    (update,) = world.updates
    assert update["UsePreviousTemplate"] is True and "TemplateBody" not in update
    given = {p["ParameterKey"]: p for p in update["Parameters"]}
    assert given["ModelVersion"] == {"ParameterKey": "ModelVersion", "ParameterValue": CANDIDATE}
    # Every other parameter of the template keeps its value; none is forgotten.
    assert set(given) == set(auto["Parameters"])
    assert all(p.get("UsePreviousValue") for k, p in given.items() if k != "ModelVersion")
    assert done.path.count("RolloutStatus") == 2  # polled until CloudFormation was done
    assert latest(aws) == CANDIDATE
    record = json.loads(
        aws.get_object(Bucket=MODELS, Key=f"models/{CANDIDATE}/promotion.json")["Body"].read()
    )
    assert record["previous"] == SERVED and record["by"] == "retraining pipeline"
    (message,) = world.messages
    assert "promoted and rolled out" in message


def test_a_rolled_back_canary_leaves_latest_on_the_serving_model(
    auto: dict[str, Any], aws: Any
) -> None:
    label(aws, 3)
    world = World(auto, aws, rollout=("UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"))
    done = walk(auto, world)
    assert (done.status, done.end) == ("FAILED", "RolledBack")
    assert latest(aws) == SERVED
    (message,) = world.messages
    assert f"{SERVED} still serves" in message and "UPDATE_ROLLBACK_COMPLETE" in message


def test_labels_already_learnt_by_the_last_candidate_do_not_train_again(
    raw: dict[str, Any], aws: Any
) -> None:
    label(aws, 3)
    walk(raw, World(raw, aws, accepted=False))  # a refused candidate learnt these three
    world = World(raw, aws)
    done = walk(raw, world)
    assert done.end == "NothingToLearn" and world.jobs == []


def test_a_run_beside_another_ends_at_once(raw: dict[str, Any], aws: Any) -> None:
    import boto3

    label(aws, 3)
    walk(raw, World(raw, aws, accepted=False))  # creates the state machine in moto
    sfn = boto3.client("stepfunctions")
    arn = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    sfn.start_execution(stateMachineArn=arn, name="scheduled-run")  # still running
    label(aws, 6)
    world = World(raw, aws)
    done = walk(raw, world)
    assert (done.status, done.end) == ("SUCCEEDED", "NothingToLearn")
    assert "scheduled-run" in done.output["check"]["message"] and world.jobs == []


def test_a_stack_serving_another_model_than_latest_blocks_and_tells_the_owner(
    raw: dict[str, Any], aws: Any
) -> None:
    import boto3

    template = {
        "Parameters": {"ModelVersion": {"Type": "String"}},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    }
    stack = boto3.client("cloudformation").create_stack(
        StackName="Cifar10Classifier",
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "ModelVersion", "ParameterValue": CANDIDATE}],
    )["StackId"]
    label(aws, 3)
    world = World(raw, aws)
    world.settings.stack = stack
    done = walk(raw, world)
    assert (done.status, done.end) == ("FAILED", "Blocked")
    (message,) = world.messages
    assert f"latest names {SERVED} but the stack serves {CANDIDATE}" in message
    assert world.jobs == []


# --- the template: triggers and least privilege ----------------------------------------------
def test_triggers_are_off_by_default_and_follow_their_settings(
    raw: dict[str, Any], auto: dict[str, Any]
) -> None:
    machine, _ = machine_of(raw)
    assert not [r for r in resources(raw, "AWS::Events::Rule").values() if machine in json.dumps(r)]
    machine, _ = machine_of(auto)
    rules = [r["Properties"] for r in resources(auto, "AWS::Events::Rule").values()]
    rules = [r for r in rules if machine in json.dumps(r)]
    inputs = {r["ScheduleExpression"]: json.loads(r["Targets"][0]["Input"]) for r in rules}
    assert inputs == {"rate(7 days)": {"minLabels": 1}, "rate(1 day)": {"minLabels": 50}}


def test_only_the_rollout_role_may_update_the_stack_and_only_with_its_own_template(
    auto: dict[str, Any], raw: dict[str, Any]
) -> None:
    def updaters(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [
            (n, s)
            for n, s in statements(template)
            if "cloudformation:updatestack" in json.dumps(s["Action"]).lower()
        ]

    assert updaters(raw) == []
    updating = updaters(auto)
    assert (
        {n for n, _ in updating}
        == {n for n, _ in updating if n.startswith("RetrainingRolloutRole")}
        != set()
    )
    # The state machine's own role may only assume the rollout role: no CloudFormation itself.
    machine = [s for n, s in statements(auto) if n.startswith("RetrainingStateMachineRole")]
    assert not [s for s in machine if "cloudformation" in json.dumps(s["Action"]).lower()]
    (assume,) = [s for s in machine if s["Action"] == "sts:AssumeRole"]
    assert "RetrainingRolloutRole" in json.dumps(assume["Resource"])
    definition = asl.definition_of(machine_of(auto)[1])
    for name in ("RollOut", "RolloutStatus"):
        assert definition["States"][name]["Credentials"]["RoleArn"].startswith("ref:Retraining")
    allow = [s for _, s in updating if s["Effect"] == "Allow"]
    assert all(s["Resource"] == {"Ref": "AWS::StackId"} for s in allow)
    (deny,) = [s for _, s in updating if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Null": {"cloudformation:TemplateUrl": "false"}}
    (role,) = [
        r
        for k, r in resources(auto, "AWS::IAM::Role").items()
        if k.startswith("RetrainingRolloutRole")
    ]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert "RetrainingStateMachineRole" in json.dumps(trust["Principal"])


def test_only_the_promote_step_writes_latest(raw: dict[str, Any]) -> None:
    writers = {
        name
        for name, s in statements(raw)
        if "s3:PutObject" in json.dumps(s["Action"]) and "models/latest/" in json.dumps(s)
    }
    assert (
        {w for w in writers if w.startswith("Retraining")}
        == {w for w in writers if w.startswith("RetrainingPromoteFunction")}
        != set()
    )
    passing = [s for n, s in statements(raw) if n.startswith("RetrainingStateMachine")]
    (pass_role,) = [s for s in passing if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_the_training_source_is_a_deploy_time_asset(raw: dict[str, Any]) -> None:
    copies = [
        r["Properties"]
        for k, r in raw["Resources"].items()
        if r["Type"] == "Custom::CDKBucketDeployment" and k.startswith("RetrainingTrainingSource")
    ]
    (copy,) = copies
    assert copy["DestinationBucketKeyPrefix"] == "sagemaker/source/pipeline/"


def test_the_request_fields_are_the_ones_make_train_cloud_sends() -> None:
    from classifier import contract

    from release import cloud

    request = cloud.job_request(name="n", bucket="b", role_arn="r", region="r", source_uri="s")
    assert tuple(request) == contract.TRAINING_REQUEST_FIELDS


def test_promotion_record_name_is_release_promotes() -> None:
    from infra.components import retraining
    from release import promote

    assert retraining.PROMOTION_RECORD == promote.PROMOTION_RECORD


def test_the_steps_settings_are_the_functions_environment(raw: dict[str, Any]) -> None:
    from release import pipeline

    for step in ("check", "gate", "promote"):
        ref = function_ref(raw, step).removeprefix("ref:")
        environment = raw["Resources"][ref]["Properties"]["Environment"]["Variables"]
        settings = pipeline.Settings({k: str(v) for k, v in environment.items()})
        assert settings.spot and settings.min_labels == 1
        assert settings.instance_type == "ml.g4dn.xlarge"
