"""Upload classifier: uploads/ objects -> S3 notification -> SQS (+DLQ) -> Lambda -> results/."""

from __future__ import annotations

from dataclasses import replace

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from classifier import contract
from classifier.contract import Env as env
from constructs import Construct

from infra import nag
from infra.components.model_store import secure_bucket
from infra.components.rollout import (
    Rollout,
)
from infra.components.serving_function import FunctionSettings, serving_function
from infra.config import Config
from infra.hooks.check_events import uploads_check_event

UPLOADS_PREFIX = contract.UPLOADS_PREFIX
RESULTS_PREFIX = contract.RESULTS_PREFIX


class UploadClassifier(Construct):
    """A bucket whose ``uploads/<anything>`` is classified into ``results/<anything>.json``.

    The notification filters on the prefix only (``contract.UPLOADS_NOTIFICATION_FILTER``): S3
    suffix filters are literal and case-sensitive, so `.JPG`, `.Png` or no extension would be
    missed. The handler reads the content and answers every object, images or not.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        function: FunctionSettings,
        config: Config,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, id_)
        results_days, timeout_s = config.results_days, function.timeout_s
        self.bucket = secure_bucket(
            self,
            "Bucket",
            access_logs=access_logs,
            log_prefix="uploads-bucket/",
            # Browsers POST async uploads straight here (a presigned POST from the API).
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.POST],
                    allowed_origins=config.cors_origins,
                    allowed_headers=["*"],
                    max_age=3600,
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireOldResults",
                    prefix=RESULTS_PREFIX,
                    expiration=Duration.days(results_days),
                ),
                # Images sent through POST /uploads are only kept until classified: without
                # this they (up to 20 MB each, from anyone when auth=none) would pile up.
                s3.LifecycleRule(
                    id="ExpireAsyncUploads",
                    prefix=f"{UPLOADS_PREFIX}{contract.ASYNC_FOLDER}",
                    expiration=Duration.days(config.async_uploads_days),
                ),
                s3.LifecycleRule(
                    id="ExpireOldVersions",
                    noncurrent_version_expiration=Duration.days(results_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
        )
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        nag.acknowledge(
            self.dead_letters, "AwsSolutions-SQS3", "This queue is the dead-letter queue."
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            # AWS's advice for Lambda consumers: at least six times the function's timeout.
            visibility_timeout=Duration.seconds(6 * timeout_s),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=config.max_receive_count
            ),
        )
        self.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.SqsDestination(self.queue),
            s3.NotificationKeyFilter(**contract.UPLOADS_NOTIFICATION_FILTER),
        )
        self.function, self.log_group = serving_function(
            self,
            "Function",
            settings=function,
            handler="classifier.upload_classifier.handler",
            description="Classifies images dropped under uploads/ into results/",
            service=contract.UPLOADS_SERVICE,
            environment={
                env.UPLOADS_PREFIX: UPLOADS_PREFIX,
                env.RESULTS_PREFIX: RESULTS_PREFIX,
                env.EVENT_BUS: "default",
            },
        )
        # The queue feeds the alias: its version pins the model and CodeDeploy moves it.
        self.rollout = Rollout(
            self,
            "Rollout",
            function=self.function,
            service=contract.UPLOADS_SERVICE,
            # A batch of large images legitimately takes seconds: half the timeout is the limit.
            settings=replace(function.rollout, p99_ms=timeout_s * 500),
            check_event=uploads_check_event(),
            log_retention=function.log_retention,
        )
        self.alias = self.rollout.alias
        self.alias.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=config.uploads_batch_size,
                max_batching_window=Duration.seconds(2),
                report_batch_item_failures=True,
                # A burst of uploads takes at most this many concurrent functions, leaving the
                # account's concurrency (and the API's) alone.
                max_concurrency=config.uploads_max_concurrency,
            )
        )
        # Completion events ("Image Classified") on the account's default bus.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutEvents"],
                resources=[
                    Stack.of(self).format_arn(
                        service="events", resource="event-bus", resource_name="default"
                    )
                ],
            )
        )
        # Least privilege: read uploads; write results, and read them back (HeadObject) to keep
        # the newest; nothing else in this bucket.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.bucket.arn_for_objects(f"{UPLOADS_PREFIX}*")],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject"],
                resources=[self.bucket.arn_for_objects(f"{RESULTS_PREFIX}*")],
            )
        )
        nag.accept_prefix(
            self.function, self.bucket, f"{UPLOADS_PREFIX}*", "the uploaded images, read-only"
        )
        nag.accept_prefix(
            self.function,
            self.bucket,
            f"{RESULTS_PREFIX}*",
            "the results, written and read back to keep the newest",
        )
