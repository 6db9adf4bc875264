"""The one stack: model store, inference API, upload classifier and monitoring, wired together.

Settings come from CDK context (``cdk deploy -c key=value`` or cdk.json); see :class:`Config`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from aws_cdk import CfnOutput, CfnParameter, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from classifier import contract
from classifier.contract import Env as env
from constructs import Construct

from infra import nag
from infra.components.bulk_classifier import BulkClassifier
from infra.components.bundling import ROOT, TARGETS
from infra.components.drift import Drift, DriftSettings
from infra.components.inference_api import InferenceApi
from infra.components.model_store import ModelStore
from infra.components.monitoring import Monitoring
from infra.components.retraining import Retraining, RetrainSettings
from infra.components.review_store import ReviewStore
from infra.components.rollout import RolloutSettings
from infra.components.serving_function import FunctionSettings
from infra.components.training_job import TrainingJobRole
from infra.components.upload_classifier import UploadClassifier
from infra.config import Config, retention_days


class ClassifierStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, config: Config, **kwargs: Any) -> None:
        super().__init__(scope, id_, **kwargs)
        retention = retention_days(config.log_retention_days)

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(config.log_retention_days))],
        )
        nag.acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the access-log bucket itself; logging it to itself would loop.",
        )
        self.model_version = CfnParameter(
            self,
            "ModelVersion",
            type="String",
            default=config.model_version or repository_model_version(),
            allowed_pattern=MODEL_VERSION_PATTERN,
            description=(
                "The model both functions serve: models/<ModelVersion>/ in the model bucket. "
                "Set by make promote / make rollback (cdk deploy --parameters ModelVersion=...)"
            ),
        )
        self.models = ModelStore(
            self,
            "ModelStore",
            access_logs=self.access_logs,
            model_version=self.model_version.value_as_string,
            log_retention=retention,
        )
        rollout = RolloutSettings(
            model_version=self.model_version.value_as_string,
            deployment=config.deployment,
            p99_ms=config.canary_p99_ms,
            min_mean_confidence=config.min_mean_confidence,
            max_rejected_percent=config.max_rejected_percent,
        )
        function = FunctionSettings(
            target=TARGETS[config.runtime],
            model_uri=self.models.manifest_uri,
            rollout=rollout,
            memory_mb=config.api_memory_mb,
            timeout_s=config.api_timeout_s,
            snap_start=config.snap_start,
            log_retention=retention,
            tracing=config.tracing,
            reserved_concurrency=config.api_reserved_concurrency,
        )
        self.api = InferenceApi(self, "InferenceApi", function=function, config=config)
        self.uploads = UploadClassifier(
            self,
            "UploadClassifier",
            function=replace(
                function,
                memory_mb=config.uploads_memory_mb,
                timeout_s=config.uploads_timeout_s,
                reserved_concurrency=None,  # its queue's max_concurrency bounds it instead
            ),
            config=config,
            access_logs=self.access_logs,
        )
        if self.models.deployment is not None:
            # A version is published (and, with SnapStart, initialised) after the repository's
            # models are in the bucket.
            for published in (self.api.rollout.version, self.uploads.rollout.version):
                published.node.add_dependency(self.models.deployment)
        # Grants are made here, where the components meet.
        self.models.grant_read_models(self.api.function)
        self.models.grant_read_models(self.uploads.function)
        self._wire_async_uploads()
        self.review_store = ReviewStore(
            self,
            "Feedback",  # the construct's id, kept: a deployed stack keeps its secret and grants
            bucket=self.uploads.bucket,
            api_function=self.api.function,
            uploads_function=self.uploads.function,
            config=config,
        )
        self.review_store.grant_review_routes(self.api.http_api, config.auth)
        self.bulk = BulkClassifier(
            self,
            "BulkClassifier",
            bucket=self.uploads.bucket,
            function=self.uploads.alias,
            config=config,
            log_retention=retention,
        )
        self.uploads.bucket.grant_read(self.bulk.state_machine)  # to list the prefix
        self.uploads.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],  # bulk reads any prefix of its own bucket
                resources=[self.uploads.bucket.arn_for_objects("*")],
            )
        )
        anywhere = (
            "Bulk classification (`make classify-bucket`) reads whatever prefix of the uploads "
            "bucket its user names at run time, and the Distributed Map lists it and writes its "
            "run report there; the bucket is this stack's own."
        )
        for reader in (self.uploads.function, self.bulk.state_machine):
            nag.accept_iam5(
                reader, f"Resource::<{nag.logical_id(self.uploads.bucket)}.Arn>/*", anywhere
            )

        self._expire_notification_handler_logs(retention)
        self.training = TrainingJobRole(self, "TrainingJob", bucket=self.models.bucket)
        self.review_store.grant_read_labels(self.training.role)  # make train-cloud --corrections
        self.monitoring = Monitoring(self, "Monitoring", alarm_email=config.alarm_email)
        self.monitoring.watch_function("Api", self.api.function)
        self.monitoring.watch_function("Uploads", self.uploads.function)
        self.monitoring.watch_api(self.api.http_api)
        self.monitoring.watch_dead_letters(self.uploads.dead_letters)
        self.monitoring.notify(self.api.rollout.alarms + self.uploads.rollout.alarms)
        self.drift = Drift(
            self,
            "Drift",
            bucket=self.models.bucket,
            manifest_key=self.models.manifest_key,
            model_version=self.model_version.value_as_string,
            settings=DriftSettings(
                window_hours=config.drift_window_hours,
                min_answers=config.drift_min_answers,
                z=config.drift_z,
                baseline=config.drift_baseline,
                baseline_days=config.drift_baseline_days,
            ),
            log_retention=retention,
        )
        for first in (self.models.deployment, self.models.seed):  # the manifest is there first
            if first is not None:
                self.drift.baseline.node.add_dependency(first)
        self.monitoring.notify(self.drift.alarms)
        self.retraining = Retraining(
            self,
            "Retraining",
            models_bucket=self.models.bucket,
            uploads_bucket=self.uploads.bucket,
            training_role=self.training.role,
            topic=self.monitoring.topic,
            model_version=self.model_version,
            target=TARGETS[config.runtime],
            settings=RetrainSettings(
                schedule=config.retrain_schedule,
                min_labels=config.retrain_min_labels,
                auto_promote=config.retrain_auto_promote,
                instance_type=config.retrain_instance_type,
                spot=config.retrain_spot,
                max_runtime_minutes=config.retrain_max_minutes,
            ),
            log_retention=retention,
        )
        self.review_store.grant_read_labels(self.retraining.gate.role)  # type: ignore[arg-type]
        self.dashboard = self.monitoring.dashboard(
            api=self.api.http_api,
            functions={"API": self.api.function, "Uploads": self.uploads.function},
            dead_letters=self.uploads.dead_letters,
        )
        self.dashboard.add_widgets(*self.drift.widgets())
        dashboard = (
            f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}"
            f"#dashboards:name={self.dashboard.dashboard_name}"
        )
        outputs = {
            "ApiUrl": (self.api.url, "the API; POST an image to <ApiUrl>predict"),
            "ModelBucket": (
                self.models.bucket.bucket_name,
                "publish models here: python -m training.train --upload s3://<this>",
            ),
            "TrainingRoleArn": (
                self.training.role.role_arn,
                "the role of make train-cloud's SageMaker jobs (candidates, never latest)",
            ),
            "UploadsBucket": (
                self.uploads.bucket.bucket_name,
                "put images under uploads/, read results/<name>.json",
            ),
            "DeadLetterQueue": (
                self.uploads.dead_letters.queue_url,
                "uploads that failed after retries",
            ),
            "RetrainStateMachine": (
                self.retraining.state_machine.state_machine_arn,
                "the retraining pipeline: make retrain starts it (docs/lifecycle.md)",
            ),
            "BulkStateMachine": (
                self.bulk.state_machine.state_machine_arn,
                "make classify-bucket SRC=s3://<UploadsBucket>/<prefix> starts it",
            ),
            "Dashboard": (
                dashboard,
                "requests, latency, errors, throttles, dead letters, categories, models",
            ),
            "ModelUri": (self.models.manifest_uri, "the manifest both functions load"),
            "DriftBaselineSource": (
                self.drift.attribute("Source"),
                "what the drift alarms compare with (validation answers, or traffic)",
            ),
        }
        if self.review_store.token is not None:
            outputs["ReviewerTokenSecret"] = (
                self.review_store.token.secret_arn,
                "the review page's token: aws secretsmanager get-secret-value --secret-id <this>",
            )
        if self.review_store.reviewer_policy is not None:
            outputs["ReviewerPolicyArn"] = (
                self.review_store.reviewer_policy.managed_policy_arn,
                "attach to reviewers: may call the review routes (labels), nothing else",
            )
        for name, (value, description) in outputs.items():
            CfnOutput(self, name, value=value, description=description)
        self._acknowledge_stack_wide(config.tracing)

    def _acknowledge_stack_wide(self, tracing: bool) -> None:
        """cdk-nag findings every function of the stack shares (CDK's own handlers included)."""
        nag.acknowledge(
            self,
            "AwsSolutions-L1",
            "The functions run python3.13, the newest Python that LiteRT's wheels and SnapStart "
            "cover here (python3.11 stays available for tflite-runtime by context); CDK's "
            "custom-resource handlers choose their own runtimes.",
        )
        nag.acknowledge(
            self,
            "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
            "service-role/AWSLambdaBasicExecutionRole]",
            "AWSLambdaBasicExecutionRole only lets a function write its own logs; CDK gives it "
            "to Lambda functions and to its custom-resource handlers.",
        )
        if tracing:
            nag.accept_iam5(
                self,
                "Resource::*",
                "X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level "
                "permissions: AWS documents Resource * for them (only when tracing is on).",
            )

    def _expire_notification_handler_logs(self, retention: logs.RetentionDays) -> None:
        """CDK's bucket-notifications handler (a function it adds to the stack) logs to a group
        Lambda would create with no expiry: create that group first, with a retention."""
        handler = self.node.try_find_child(NOTIFICATIONS_HANDLER_ID)
        if handler is None:
            return
        function = handler.node.default_child
        group = logs.LogGroup(
            self,
            "BucketNotificationsHandlerLogs",
            log_group_name=Fn.join("", ["/aws/lambda/", function.ref]),  # type: ignore[union-attr]
            retention=retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # The handler first runs (and would create its group) when the notification is set.
        self.uploads.bucket.node.find_child("Notifications").node.add_dependency(group)

    def _wire_async_uploads(self) -> None:
        """POST /uploads signs S3 POSTs into uploads/async/; GET /results/{id} reads results."""
        bucket = self.uploads.bucket
        self.api.function.add_environment(env.UPLOADS_BUCKET, bucket.bucket_name)
        folder = contract.ASYNC_FOLDER
        self.api.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject"],  # sign the POST; HEAD the upload
                resources=[bucket.arn_for_objects(f"{contract.UPLOADS_PREFIX}{folder}*")],
            )
        )
        self.api.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{contract.RESULTS_PREFIX}{folder}*")],
            )
        )
        nag.accept_prefix(
            self.api.function,
            bucket,
            f"{contract.UPLOADS_PREFIX}{folder}*",
            "async uploads: the API signs POSTs of one key each and checks they arrived",
        )
        nag.accept_prefix(
            self.api.function,
            bucket,
            f"{contract.RESULTS_PREFIX}{folder}*",
            "async results, read-only, by unguessable id",
        )


# The id CDK gives its bucket-notifications handler (one per stack; aws-s3's BucketNotifications).
NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
MODEL_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def repository_model_version() -> str:
    """The version of the repository's published model (models/latest/manifest.json)."""
    latest = ROOT / contract.REPO_MODEL_PATH
    if not latest.is_file():
        return "latest"
    return str(json.loads(latest.read_text())["model_version"])
