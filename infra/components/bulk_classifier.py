"""Bulk classifier: a Step Functions Distributed Map over an existing prefix of the uploads bucket.

``make classify-bucket SRC=s3://<uploads bucket>/<prefix>`` starts it. The map lists the prefix
(S3 ListObjectsV2 as item reader), hands batches of keys to the drop-folder function (the same
classify-one-object code, results under results/), runs a bounded number of batches at once,
tolerates a share of failed batches, and writes its own run report to S3.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from classifier import contract
from constructs import Construct

from infra import nag
from infra.config import Config

REPORTS_PREFIX = "bulk-reports/"
THROTTLING_ERRORS = (
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
)


class BulkClassifier(Construct):
    """``{"prefix": "archive/2026/"}`` in, a result per object under results/ out."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        bucket: s3.IBucket,
        function: lambda_.IFunction,
        config: Config,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id_)
        self.bucket = bucket
        classify = tasks.LambdaInvoke(
            self,
            "ClassifyBatch",
            lambda_function=function,
            payload_response_only=True,
            retry_on_service_exceptions=False,  # ours below also waits out throttling
        )
        # Throttling is the normal state of a small account under a bulk run (its concurrency
        # limit may be 10): wait it out with jittered exponential backoff rather than count the
        # batch as failed. Retriers are tried in order; the first matching one applies.
        classify.add_retry(
            errors=list(THROTTLING_ERRORS),
            max_attempts=10,
            interval=Duration.seconds(2),
            backoff_rate=2,
            max_delay=Duration.seconds(60),
            jitter_strategy=sfn.JitterType.FULL,
        )
        classify.add_retry(
            errors=["States.TaskFailed"], max_attempts=2, interval=Duration.seconds(5)
        )
        self.map = sfn.DistributedMap(
            self,
            "EachObject",
            item_reader=sfn.S3ObjectsItemReader(
                bucket=bucket, prefix=sfn.JsonPath.string_at("$.prefix")
            ),
            item_batcher=sfn.ItemBatcher(
                max_items_per_batch=config.bulk_items_per_batch,
                batch_input={contract.BULK_BUCKET_FIELD: bucket.bucket_name},
            ),
            max_concurrency=config.bulk_max_concurrency,
            tolerated_failure_percentage=config.bulk_tolerated_failure_percentage,
            result_writer_v2=sfn.ResultWriterV2(bucket=bucket, prefix=REPORTS_PREFIX),
            result_path=sfn.JsonPath.DISCARD,
        )
        self.map.item_processor(classify)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(self.map),
            timeout=Duration.hours(24),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=logs.LogGroup(self, "Logs", retention=log_retention),
                level=sfn.LogLevel.ERROR,
            ),
        )
        self._acknowledge(function)

    def _acknowledge(self, function: lambda_.IFunction) -> None:
        """The grants CDK gives a Distributed Map, and its logging level."""
        machine = self.state_machine
        stack = Stack.of(self)
        partition, region, account = (
            nag.literal(stack.partition, "Partition"),
            nag.literal(stack.region, "Region"),
            nag.literal(stack.account, "AccountId"),
        )
        executions = (
            f"arn:{partition}:states:{region}:{account}:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{nag.logical_id(machine)}"}}]}}]}}'
        )
        bucket_id = nag.logical_id(self.bucket)
        for finding, reason in (
            (
                f"Resource::arn:<AWS::Partition>:s3:::<{bucket_id}>/*",
                "CDK's Distributed Map item reader and result writer grant object access on the "
                "bucket they list and report into, this stack's uploads bucket.",
            ),
            (
                f"Resource::<{nag.logical_id(getattr(function, 'lambda_', function))}.Arn>:*",
                "CDK's LambdaInvoke lets the state machine call the drop-folder function's "
                "versions and aliases (one function, this stack's).",
            ),
            (
                f"Resource::{executions}:*",
                "A Distributed Map manages its own child executions (CDK grants it on them only).",
            ),
            (
                f"Resource::{executions}/*:*",
                "A Distributed Map manages its own map runs (CDK grants it on them only).",
            ),
            (
                "Resource::*",
                "X-Ray's PutTraceSegments and PutTelemetryRecords (the bulk state machine is "
                "traced) have no resource-level permissions: AWS documents Resource *.",
            ),
        ):
            nag.accept_iam5(machine, finding, reason)
        nag.acknowledge(
            machine,
            "AwsSolutions-SF1",
            "The bulk state machine logs errors only: at ALL, a run over millions of objects "
            "would write several log events per object; results and a run report go to S3.",
        )
