"""The cloud training job's role: what a SageMaker job started by `make train-cloud` may do.

Least privilege on the model bucket: read the data set and the job's source archive, write the
job's output and candidates under ``models/<version>/``, read those back to check them, and never
write ``models/latest/`` (an explicit deny: only `make promote` moves latest). Plus pulling AWS's
TensorFlow training image, and the job's own logs and metrics.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from classifier import contract
from constructs import Construct

from infra import nag
from infra.components.grants import list_under

MODELS = contract.MODELS_PREFIX


class TrainingJobRole(Construct):
    def __init__(self, scope: Construct, id_: str, *, bucket: s3.IBucket) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description="SageMaker training jobs of make train-cloud: write candidates, not latest",
        )
        statements = [
            iam.PolicyStatement(
                sid="ReadDataAndSource",
                actions=["s3:GetObject"],
                resources=[
                    bucket.arn_for_objects(contract.DATA_KEY),
                    bucket.arn_for_objects(f"{contract.TRAINING_SOURCE_PREFIX}*"),
                    bucket.arn_for_objects(f"{MODELS}*"),  # the candidate, read back
                ],
            ),
            list_under(
                bucket, contract.DATA_KEY, f"{contract.DATA_PREFIX}*", sid="ListTheDataChannel"
            ),
            iam.PolicyStatement(
                sid="WriteCandidatesAndOutput",
                actions=["s3:PutObject"],
                resources=[
                    bucket.arn_for_objects(f"{MODELS}*"),
                    bucket.arn_for_objects(f"{contract.TRAINING_OUTPUT_PREFIX}*"),
                ],
            ),
            iam.PolicyStatement(
                sid="NeverLatest",
                effect=iam.Effect.DENY,
                actions=["s3:PutObject", "s3:DeleteObject"],
                resources=[bucket.arn_for_objects(f"{MODELS}{contract.LATEST}/*")],
            ),
            iam.PolicyStatement(
                sid="PullTheTensorFlowImage",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                ],
                resources=[
                    f"arn:{stack.partition}:ecr:{stack.region}:{contract.TRAINING_IMAGE_ACCOUNT}:"
                    "repository/tensorflow-training"
                ],
            ),
            iam.PolicyStatement(
                sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]
            ),
            iam.PolicyStatement(
                sid="JobLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[
                    f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:"
                    "/aws/sagemaker/TrainingJobs:*"
                ],
            ),
            iam.PolicyStatement(
                sid="JobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={
                    "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}
                },
            ),
        ]
        for statement in statements:
            self.role.add_to_policy(statement)
        nag.accept_prefix(self.role, bucket, f"{MODELS}*", "candidates written and read back")
        partition, region, account = (
            nag.literal(stack.partition, "Partition"),
            nag.literal(stack.region, "Region"),
            nag.literal(stack.account, "AccountId"),
        )
        for finding, reason in (
            (
                "Resource::*",
                "ecr:GetAuthorizationToken has no resource-level permissions, and "
                "cloudwatch:PutMetricData is held to the /aws/sagemaker/TrainingJobs namespace "
                "by a condition.",
            ),
            (
                f"Resource::<{nag.logical_id(bucket)}.Arn>/{contract.TRAINING_SOURCE_PREFIX}*",
                "The training job reads the source archive `make train-cloud` uploads for it.",
            ),
            (
                f"Resource::<{nag.logical_id(bucket)}.Arn>/{contract.TRAINING_OUTPUT_PREFIX}*",
                "The training job writes SageMaker's model.tar.gz and output.tar.gz here.",
            ),
            (
                f"Resource::arn:{partition}:logs:{region}:{account}:log-group:"
                "/aws/sagemaker/TrainingJobs:*",
                "A training job writes its log streams into SageMaker's log group.",
            ),
        ):
            nag.accept_iam5(self.role, finding, reason)
