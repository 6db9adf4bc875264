"""Retraining: a state machine from reviewers' labels to a gated candidate, and (if allowed) to
the same canary rollout `make promote` runs, with no workstation in the loop.

    Check ─ nothing new ─────────────────────────────────────────────► NothingToLearn
      │ enough labels
    Train (SageMaker, createTrainingJob.sync: make train-cloud's request) ─ fails ─► notify, fail
      │ a candidate in models/<version>/
    Gate (make promote's gate, TensorFlow-free, test split + held-out labels) ─ refused ─► notify
      │ passed
      ├─ autoPromote off ──────────────────────────────────► notify "make promote VERSION=..."
      └─ autoPromote on: UpdateStack (its own template, ModelVersion=<candidate>)
             CodeDeploy's canary and alarms ─ rolled back ─► notify, fail (latest untouched)
             │ UPDATE_COMPLETE
           MoveLatest (promotion record, then latest) ─► notify

The steps' code is ``release/pipeline.py`` (three small functions, each with its own role); the
training source is a deploy-time asset (``release.cloud.source_archive``), copied to the model
bucket by the deploy. Started by hand, on ``retrainSchedule``, or daily when ``retrainMinLabels``
new labels exist; both triggers are off by default.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jsii
from aws_cdk import (
    ArnFormat,
    CfnParameter,
    DefaultStackSynthesizer,
    Duration,
    IStableAnyProducer,
    Lazy,
    Size,
    Stack,
)
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from classifier import contract
from constructs import Construct

from infra import nag
from infra.components.bundling import ROOT, Target, lambda_code
from infra.components.grants import list_under

SOURCE_KEY = contract.RETRAIN_SOURCE_KEY
JOB_PREFIX = contract.RETRAIN_JOB_PREFIX
PROMOTION_RECORD = "promotion.json"  # release.promote.PROMOTION_RECORD (tested equal)
# CloudFormation statuses a rollout ends in; anything else is still under way.
ROLLED_OUT = "UPDATE_COMPLETE"
ROLLED_BACK = ("UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED")
POLL = Duration.minutes(1)
BOOTSTRAP_VERSION = "BootstrapVersion"  # CDK's DefaultStackSynthesizer's parameter


@dataclass(frozen=True)
class RetrainSettings:
    schedule: str | None  # an EventBridge schedule expression, e.g. "rate(7 days)"; None: off
    min_labels: int  # > 0: a daily check trains once this many new labels exist; 0: off
    auto_promote: bool  # roll a candidate the gate accepts out through the canary
    instance_type: str
    spot: bool
    max_runtime_minutes: int


class Retraining(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        models_bucket: s3.IBucket,
        uploads_bucket: s3.IBucket,
        training_role: iam.IRole,
        topic: sns.ITopic,
        model_version: CfnParameter,
        target: Target,
        settings: RetrainSettings,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id_)
        self.settings = settings
        self.topic = topic
        self.models_bucket, self.uploads_bucket = models_bucket, uploads_bucket
        stack = Stack.of(self)
        self.source = self._training_source(models_bucket, log_retention)
        environment = {
            "MODELS_BUCKET": models_bucket.bucket_name,
            "UPLOADS_BUCKET": uploads_bucket.bucket_name,
            "TRAINING_ROLE_ARN": training_role.role_arn,
            "TRAINING_SOURCE_URI": f"s3://{models_bucket.bucket_name}/{SOURCE_KEY}",
            "TRAINING_INSTANCE_TYPE": settings.instance_type,
            "TRAINING_SPOT": "true" if settings.spot else "false",
            "TRAINING_MAX_MINUTES": str(settings.max_runtime_minutes),
            "MIN_LABELS": str(max(1, settings.min_labels)),
            "CIFAR10_CACHE": "/tmp/cifar10-cache",  # noqa: S108 - Lambda's only writable folder
        }
        code = lambda_code(target, release=True)
        # Named, so the check may list this machine's runs without a circular reference.
        self.machine_name = f"{stack.stack_name}-Retraining"
        environment["STACK_ID"] = stack.stack_id

        def step(
            id_: str, handler: str, memory: int, timeout: Duration, **kw: object
        ) -> lambda_.Function:
            return lambda_.Function(
                self,
                id_,
                runtime=target.runtime,
                architecture=target.architecture,
                handler=f"release.pipeline.{handler}",
                code=code,
                memory_size=memory,
                timeout=timeout,
                environment=environment,
                log_group=logs.LogGroup(self, f"{id_}Logs", retention=log_retention),
                description=f"retraining pipeline: {id_}",
                **kw,  # type: ignore[arg-type]
            )

        self.check = step("CheckFunction", "check_handler", 256, Duration.minutes(1))
        # The gate evaluates two models on 10,000 test images as served: CPU share is memory.
        self.gate = step(
            "GateFunction",
            "gate_handler",
            3008,
            Duration.minutes(15),
            ephemeral_storage_size=Size.gibibytes(2),
        )
        self.promote = step("PromoteFunction", "promote_handler", 512, Duration.minutes(2))
        self._grant_steps(models_bucket, uploads_bucket)

        self.machine_role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="The retraining pipeline's state machine",
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=self.machine_name,
            role=self.machine_role,
            definition_body=sfn.DefinitionBody.from_chainable(
                self._definition(training_role, model_version)
            ),
            timeout=Duration.hours(2 * settings.max_runtime_minutes // 60 + 4),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=logs.LogGroup(self, "Logs", retention=log_retention),
                level=sfn.LogLevel.ALL,
            ),
        )
        self._triggers()
        self._acknowledge(stack)

    # --- the steps --------------------------------------------------------------------------
    def _training_source(
        self, bucket: s3.IBucket, log_retention: logs.RetentionDays
    ) -> s3deploy.BucketDeployment:
        """``make train-cloud``'s source archive, packed at synth and copied by the deploy."""
        folder = Path(tempfile.mkdtemp(prefix="training-source-"))
        # `make train-cloud`'s own packing, in its own process: infra imports no release code.
        subprocess.run(
            [sys.executable, "-m", "release.cloud", "pack", str(folder / Path(SOURCE_KEY).name)],
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])},
        )
        sources = sorted(
            p
            for d in ("training", "release", "functions/classifier")
            for p in (ROOT / d).rglob("*.py")
        )
        digest = hashlib.sha256()  # the archive's gzip header has a time in it: hash the code
        for path in [*sources, ROOT / "training" / "requirements-sagemaker.txt"]:
            digest.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
        return s3deploy.BucketDeployment(
            self,
            "TrainingSource",
            sources=[s3deploy.Source.asset(str(folder), asset_hash=digest.hexdigest())],
            destination_bucket=bucket,
            destination_key_prefix=str(Path(SOURCE_KEY).parent) + "/",
            prune=False,
            retain_on_delete=True,
            log_group=logs.LogGroup(self, "SourceDeploymentLogs", retention=log_retention),
        )

    def _grant_steps(self, models: s3.IBucket, uploads: s3.IBucket) -> None:
        """Each function reads what its step needs; only MoveLatest writes, and only there."""
        models_read = models.arn_for_objects(f"{contract.MODELS_PREFIX}*")
        for function in (self.check, self.gate, self.promote):
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[models_read])
            )
            nag.accept_prefix(function, models, f"{contract.MODELS_PREFIX}*", "models, read")
        self.check.add_to_role_policy(list_under(uploads, f"{contract.LABELS_PREFIX}*"))
        self.check.add_to_role_policy(
            list_under(models, f"{contract.TRAINING_OUTPUT_PREFIX}{JOB_PREFIX}*")
        )
        stack = Stack.of(self)
        self.check.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:ListExecutions"],
                resources=[
                    stack.format_arn(
                        service="states",
                        resource="stateMachine",
                        resource_name=self.machine_name,
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.check.add_to_role_policy(
            iam.PolicyStatement(
                actions=["cloudformation:DescribeStacks"], resources=[stack.stack_id]
            )
        )
        for function in (self.check, self.gate):  # a missing key is NoSuchKey, not AccessDenied
            function.add_to_role_policy(
                list_under(models, f"{contract.MODELS_PREFIX}*", contract.DATA_KEY)
            )
        records = f"{contract.TRAINING_OUTPUT_PREFIX}{JOB_PREFIX}*"
        self.gate.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[models.arn_for_objects(contract.verdict_record_key(f"{JOB_PREFIX}*"))],
            )
        )
        nag.accept_prefix(
            self.gate,
            models,
            contract.verdict_record_key(f"{JOB_PREFIX}*"),
            "the gate's verdict records, written",
        )
        self.gate.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    models.arn_for_objects(contract.DATA_KEY),
                    models.arn_for_objects(records),
                ],
            )
        )
        nag.accept_prefix(self.gate, models, records, "the pipeline's candidate records, read")
        # The held-out labels: the stack grants them (ReviewStore.grant_read_labels).
        latest = contract.model_key(contract.LATEST, contract.MANIFEST_NAME)
        record = f"{contract.MODELS_PREFIX}*/{PROMOTION_RECORD}"
        self.promote.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[models.arn_for_objects(latest), models.arn_for_objects(record)],
            )
        )
        nag.accept_prefix(self.promote, models, record, "promotion records, written")

    def _notify(self, id_: str, message: str) -> tasks.SnsPublish:
        """Publish the text at the path ``message`` to the alarm topic (the owner's email)."""
        return tasks.SnsPublish(
            self,
            id_,
            topic=self.topic,
            subject="Retraining",
            message=sfn.TaskInput.from_json_path_at(message),
            result_path=sfn.JsonPath.DISCARD,
        )

    def _invoke(
        self, id_: str, function: lambda_.IFunction, payload: dict[str, str] | None, path: str
    ) -> tasks.LambdaInvoke:
        """The step's function with ``payload`` (None: the run's input); CDK's default
        retries on Lambda's own transient errors."""
        return tasks.LambdaInvoke(
            self,
            id_,
            lambda_function=function,
            payload=sfn.TaskInput.from_object(payload) if payload else None,
            payload_response_only=True,
            result_path=path,
        )

    def _failed(self, id_: str, text: str, *paths: str) -> sfn.IChainable:
        """Tell the owner what failed (the error's cause in the message), then fail."""
        message = sfn.JsonPath.format(text, *(sfn.JsonPath.string_at(p) for p in paths))
        return (
            sfn.Pass(self, f"Explain{id_}", parameters={"text": message}, result_path="$.why")
            .next(self._notify(f"Notify{id_}", "$.why.text"))
            .next(sfn.Fail(self, id_, error=id_, cause=text.split(":")[1].strip()))
        )

    def _definition(self, training_role: iam.IRole, model_version: CfnParameter) -> sfn.IChainable:
        check = self._invoke(
            "Check",
            self.check,
            {"input.$": "$", "machine.$": "$$.StateMachine.Id", "execution.$": "$$.Execution.Id"},
            "$.check",
        )
        check_failed = self._failed(
            "CheckFailed", "retraining: the check failed: {}; nothing changed", "$.error.Cause"
        )
        check.add_catch(check_failed, errors=["States.ALL"], result_path="$.error")
        train = sfn.CustomState(
            self,
            "Train",
            state_json={
                "Type": "Task",
                "Resource": (
                    f"arn:{Stack.of(self).partition}:states:::sagemaker:createTrainingJob.sync"
                ),
                "Parameters": {
                    f"{key}.$": f"$.check.request.{key}" for key in contract.TRAINING_REQUEST_FIELDS
                },
                "ResultSelector": {"status.$": "$.TrainingJobStatus"},
                "ResultPath": "$.training",
            },
        )
        train.add_catch(
            self._failed(
                "TrainingFailed",
                "retraining: training job {} failed: {}; nothing changed",
                "$.check.job",
                "$.error.Cause",
            ),
            errors=["States.ALL"],
            result_path="$.error",
        )
        gate = self._invoke(
            "Gate",
            self.gate,
            {"job.$": "$.check.job", "served.$": "$.check.served"},
            "$.gate",
        )
        gate.add_catch(
            self._failed(
                "GateFailed",
                "retraining: the gate could not run on {}'s candidate: {}; nothing changed",
                "$.check.job",
                "$.error.Cause",
            ),
            errors=["States.ALL"],
            result_path="$.error",
        )
        refused = self._notify("NotifyRefused", "$.gate.message").next(sfn.Succeed(self, "Refused"))
        passed = (
            self._roll_out(model_version)
            if (self.settings.auto_promote)
            else self._notify("NotifyCandidate", "$.gate.message").next(
                sfn.Succeed(self, "CandidateReady")
            )
        )
        self._grant_training(training_role)
        return check.next(
            sfn.Choice(self, "AnythingToLearn")
            .when(
                sfn.Condition.and_(
                    sfn.Condition.boolean_equals("$.check.enough", False),
                    sfn.Condition.boolean_equals("$.check.notify", True),
                ),
                self._notify("NotifyBlocked", "$.check.message").next(
                    sfn.Fail(self, "Blocked", error="Blocked", cause="the owner must act first")
                ),
            )
            .when(
                sfn.Condition.boolean_equals("$.check.enough", False),
                sfn.Succeed(self, "NothingToLearn"),
            )
            .otherwise(
                train.next(gate).next(
                    sfn.Choice(self, "GatePassed")
                    .when(sfn.Condition.boolean_equals("$.gate.accepted", True), passed)
                    .otherwise(refused)
                )
            )
        )

    def _roll_out(self, model_version: CfnParameter) -> sfn.IChainable:
        """UpdateStack with the template it has and ModelVersion=<candidate>, by a role that may
        update this stack only; poll until CloudFormation (and CodeDeploy's canary) is done."""
        stack = Stack.of(self)
        self.rollout_role = iam.Role(
            self,
            "RolloutRole",
            assumed_by=iam.ArnPrincipal(self.machine_role.role_arn),
            description="The retraining pipeline's rollout: update this stack's ModelVersion",
        )
        self.rollout_role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudformation:UpdateStack", "cloudformation:DescribeStacks"],
                resources=[stack.stack_id],
            )
        )
        # Its own template only: no template from elsewhere (the state machine never sends one).
        self.rollout_role.add_to_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["cloudformation:UpdateStack"],
                resources=["*"],
                conditions={"Null": {"cloudformation:TemplateUrl": "false"}},
            )
        )
        # The rollout's two calls run under the rollout role (task credentials): the state
        # machine's own role may only assume it. CDK's CallAwsService would also grant the call
        # to the machine's role, so these are written as states.
        self.rollout_role.grant_assume_role(self.machine_role)
        credentials = {"RoleArn": self.rollout_role.role_arn}
        sdk = f"arn:{stack.partition}:states:::aws-sdk:cloudformation"
        update = sfn.CustomState(
            self,
            "RollOut",
            state_json={
                "Type": "Task",
                "Resource": f"{sdk}:updateStack",
                "Credentials": credentials,
                "Parameters": {
                    "StackName": stack.stack_id,
                    "UsePreviousTemplate": True,
                    "Parameters": Lazy.any(StackParameters(stack, model_version)),
                    "Capabilities": [
                        "CAPABILITY_IAM",
                        "CAPABILITY_NAMED_IAM",
                        "CAPABILITY_AUTO_EXPAND",
                    ],
                },
                # (a null ResultPath would be dropped from state_json: the answer, its StackId,
                # is kept under its own path instead of replacing the run's state)
                "ResultPath": "$.rolloutStarted",
            },
        )
        update.add_catch(
            self._failed(
                "RolloutNotStarted",
                "retraining: {} passed the gate but the rollout could not start: {}; "
                "nothing changed (make promote VERSION=<it> rolls it out by hand)",
                "$.gate.candidate",
                "$.error.Cause",
            ),
            errors=["States.ALL"],
            result_path="$.error",
        )
        wait = sfn.Wait(self, "WaitForRollout", time=sfn.WaitTime.duration(POLL))
        status = sfn.CustomState(
            self,
            "RolloutStatus",
            state_json={
                "Type": "Task",
                "Resource": f"{sdk}:describeStacks",
                "Credentials": credentials,
                "Parameters": {"StackName": stack.stack_id},
                "ResultSelector": {"status.$": "$.Stacks[0].StackStatus"},
                "ResultPath": "$.rollout",
            },
        )
        status.add_retry(errors=["States.ALL"], max_attempts=3, interval=Duration.seconds(20))
        status.add_catch(
            self._failed(
                "RolloutUnknown",
                "retraining: the rollout of {} started, but its state cannot be read: {}; check "
                "the stack (and models/latest) by hand",
                "$.gate.candidate",
                "$.error.Cause",
            ),
            errors=["States.ALL"],
            result_path="$.error",
        )
        move = self._invoke(
            "MoveLatest",
            self.promote,
            {
                "candidate.$": "$.gate.candidate",
                "served.$": "$.check.served",
                "verdict.$": "$.gate.verdict",
            },
            "$.promoted",
        )
        move.add_catch(
            self._failed(
                "LatestNotMoved",
                "retraining: {} serves, but models/latest could not be moved to it: {}; run "
                "python -m release.promote <it> --no-rollout",
                "$.gate.candidate",
                "$.error.Cause",
            ),
            errors=["States.ALL"],
            result_path="$.error",
        )
        rolled_back = (
            sfn.Pass(
                self,
                "ExplainRollback",
                parameters={
                    "text": sfn.JsonPath.format(
                        "retraining: the canary of {} ended {} (CodeDeploy rolled back or the "
                        "update failed); {} still serves and models/latest names it",
                        sfn.JsonPath.string_at("$.gate.candidate"),
                        sfn.JsonPath.string_at("$.rollout.status"),
                        sfn.JsonPath.string_at("$.check.served"),
                    )
                },
                result_path="$.rolledBack",
            )
            .next(self._notify("NotifyRolledBack", "$.rolledBack.text"))
            .next(
                sfn.Fail(self, "RolledBack", error="RolledBack", cause="the canary was rolled back")
            )
        )
        return (
            update.next(wait)
            .next(status)
            .next(
                sfn.Choice(self, "RolloutDone")
                .when(
                    sfn.Condition.string_equals("$.rollout.status", ROLLED_OUT),
                    move.next(self._notify("NotifyPromoted", "$.promoted.message")).next(
                        sfn.Succeed(self, "Promoted")
                    ),
                )
                .when(
                    sfn.Condition.or_(
                        *(sfn.Condition.string_equals("$.rollout.status", s) for s in ROLLED_BACK)
                    ),
                    rolled_back,
                )
                .otherwise(wait)
            )
        )

    def _grant_training(self, training_role: iam.IRole) -> None:
        """What createTrainingJob.sync needs (Step Functions' documented policy)."""
        stack = Stack.of(self)
        jobs = stack.format_arn(
            service="sagemaker", resource="training-job", resource_name=f"{JOB_PREFIX}*"
        )
        self._training_statements = [
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[jobs],
            ),
            iam.PolicyStatement(actions=["sagemaker:ListTags"], resources=["*"]),
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[training_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(
                        service="events",
                        resource="rule",
                        resource_name="StepFunctionsGetEventsForSageMakerTrainingJobsRule",
                    )
                ],
            ),
        ]

    def _triggers(self) -> None:
        for statement in self._training_statements:
            self.state_machine.add_to_role_policy(statement)
        s = self.settings
        if s.schedule:
            events.Rule(
                self,
                "Schedule",
                schedule=events.Schedule.expression(s.schedule),
                description="retraining on its schedule (retrainSchedule)",
                targets=[
                    targets.SfnStateMachine(
                        self.state_machine,
                        input=events.RuleTargetInput.from_object({"minLabels": 1}),
                    )
                ],
            )
        if s.min_labels > 0:
            events.Rule(
                self,
                "EnoughLabels",
                schedule=events.Schedule.rate(Duration.days(1)),
                description=f"retraining once {s.min_labels} new labels exist (retrainMinLabels)",
                targets=[
                    targets.SfnStateMachine(
                        self.state_machine,
                        input=events.RuleTargetInput.from_object({"minLabels": s.min_labels}),
                    )
                ],
            )

    def _acknowledge(self, stack: Stack) -> None:
        partition, region, account = (
            nag.literal(stack.partition, "Partition"),
            nag.literal(stack.region, "Region"),
            nag.literal(stack.account, "AccountId"),
        )
        jobs = f"arn:{partition}:sagemaker:{region}:{account}:training-job/{JOB_PREFIX}*"
        nag.accept_iam5(
            self.machine_role,
            f"Resource::{jobs}",
            "createTrainingJob.sync starts and follows the pipeline's own training jobs, named "
            f"{JOB_PREFIX}<time> (Step Functions' documented policy).",
        )
        nag.accept_iam5(
            self.machine_role,
            "Resource::*",
            "sagemaker:ListTags (createTrainingJob.sync) and X-Ray's PutTraceSegments have no "
            "resource-level permissions: AWS documents Resource *.",
        )
        for function in (self.check, self.gate, self.promote):
            nag.accept_iam5(
                self.machine_role,
                f"Resource::<{nag.logical_id(function)}.Arn>:*",
                "CDK's LambdaInvoke lets the state machine call the step's versions (one "
                "function, this stack's).",
            )
        if self.settings.auto_promote:
            nag.accept_iam5(
                self.rollout_role,
                "Resource::*",
                "An explicit Deny: no stack update may bring a template from elsewhere.",
            )


@jsii.implements(IStableAnyProducer)
class StackParameters:
    """UpdateStack's Parameters: ModelVersion from the run, every other parameter of the stack
    (CDK's BootstrapVersion, ...) as it is; produced at synth, when all of them exist."""

    def __init__(self, stack: Stack, model_version: CfnParameter) -> None:
        self.stack, self.model_version = stack, model_version

    def produce(self) -> list[dict[str, object]]:
        ours = self.stack.resolve(self.model_version.logical_id)
        keys = [
            self.stack.resolve(p.logical_id)
            for p in self.stack.node.find_all()
            if isinstance(p, CfnParameter)
        ]
        # The default synthesizer adds its BootstrapVersion parameter after this is produced.
        if isinstance(self.stack.synthesizer, DefaultStackSynthesizer):
            keys.append(BOOTSTRAP_VERSION)
        return [
            {"ParameterKey": key, "ParameterValue.$": "$.gate.candidate"}
            if key == ours
            else {"ParameterKey": key, "UsePreviousValue": True}
            for key in dict.fromkeys(keys)
        ]
