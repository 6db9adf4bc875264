"""cdk-nag AwsSolutions findings this stack accepts, each with its reason, in one place.

The stack calls :func:`acknowledge_nag_findings` once, after its components are built; a test
fails on any finding that is neither fixed nor listed here with a written reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, DefaultStackSynthesizer, Stack, Token, Validations
from classifier import contract
from constructs import IConstruct

if TYPE_CHECKING:
    from infra.stack import ClassifierStack


def _literal(value: str, name: str) -> str:
    """How cdk-nag prints ``value`` in a finding: itself, or <AWS::Name> while it is a token."""
    return f"<AWS::{name}>" if Token.is_unresolved(value) else value


def assets_bucket_arn(stack: Stack) -> str:
    """The CDK assets bucket's ARN as cdk-nag prints it (concrete parts when known)."""
    qualifier = (
        stack.node.try_get_context("@aws-cdk/core:bootstrapQualifier")
        or DefaultStackSynthesizer.DEFAULT_QUALIFIER
    )
    partition = _literal(stack.partition, "Partition")
    account, region = _literal(stack.account, "AccountId"), _literal(stack.region, "Region")
    return f"arn:{partition}:s3:::cdk-{qualifier}-assets-{account}-{region}"


def _bucket_id(stack: Stack, bucket: IConstruct) -> str:
    return stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]


def acknowledge_nag_findings(stack: ClassifierStack, *, tracing: bool, auth: str = "none") -> None:
    """Acknowledge the AwsSolutions findings we accept on ``stack``."""
    accept: list[tuple[IConstruct, str, str]] = [
        (
            stack.access_logs,
            "AwsSolutions-S1",
            "This is the access-log bucket itself; logging it to itself would loop.",
        ),
        (stack.uploads.dead_letters, "AwsSolutions-SQS3", "This queue is the dead-letter queue."),
        (
            stack,
            "AwsSolutions-L1",
            "The functions run python3.13, the newest Python that LiteRT's wheels and SnapStart "
            "cover here (python3.11 stays available for tflite-runtime by context); CDK's "
            "custom-resource handlers choose their own runtimes.",
        ),
        (
            stack,
            "AwsSolutions-APIG4",
            "A public classifier API, throttled at the stage (context auth=iam or auth=jwt "
            "closes it)."
            if auth == "none"
            else f"auth={auth} protects every route that classifies or returns data; the page, "
            "/health and the OpenAPI docs stay public by design (they hold no data).",
        ),
        (
            stack,
            "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
            "service-role/AWSLambdaBasicExecutionRole]",
            "AWSLambdaBasicExecutionRole only lets a function write its own logs; CDK gives it "
            "to Lambda functions and to its custom-resource handlers.",
        ),
        (
            stack,
            "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
            "service-role/AWSCodeDeployRoleForLambdaLimited]",
            "CodeDeploy's role for Lambda rollouts (CDK's LambdaDeploymentGroup): the limited "
            "policy lets it read the alarms, update the live aliases and invoke hooks, nothing "
            "else.",
        ),
    ]
    prefixes = [
        (stack.models.bucket, f"{contract.MODELS_PREFIX}*", "the model objects, read-only"),
        (stack.uploads.bucket, f"{contract.UPLOADS_PREFIX}*", "the uploaded images, read-only"),
        (
            stack.uploads.bucket,
            f"{contract.RESULTS_PREFIX}*",
            "the results, written and read back to keep the newest",
        ),
    ]
    folder = contract.ASYNC_FOLDER
    prefixes += [
        (
            stack.uploads.bucket,
            f"{contract.UPLOADS_PREFIX}{folder}*",
            "async uploads: the API signs POSTs of one key each and checks they arrived",
        ),
        (
            stack.uploads.bucket,
            f"{contract.RESULTS_PREFIX}{folder}*",
            "async results, read-only, by unguessable id",
        ),
    ]
    prefixes += [
        (
            stack.uploads.bucket,
            f"{contract.REVIEW_ITEMS_PREFIX}*",
            "captured answers' review records (the drop folder writes one per unsure answer)",
        ),
        (
            stack.uploads.bucket,
            f"{contract.REVIEW_PREFIX}*",
            "the review store: records, the API's captured images and label claims (all expire)",
        ),
        (
            stack.uploads.bucket,
            f"{contract.LABELS_PREFIX}*",
            "labels: the API copies a labelled image under labels/<label>/, written only",
        ),
    ]
    for bucket, prefix, what in prefixes:
        accept.append(
            (
                stack,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{_bucket_id(stack, bucket)}.Arn>/"
                f"{prefix}]",
                f"Scoped to one prefix, {prefix}: {what}.",
            )
        )
    models_id = _bucket_id(stack, stack.models.bucket)
    deployment_findings = [
        "Action::s3:Abort*",
        "Action::s3:DeleteObject*",
        "Action::s3:GetBucket*",
        "Action::s3:GetObject*",
        "Action::s3:List*",
        f"Resource::<{models_id}.Arn>/*",
        f"Resource::{assets_bucket_arn(stack)}/*",
    ]
    for finding in deployment_findings:
        accept.append(
            (
                stack,
                f"AwsSolutions::AwsSolutions-IAM5[{finding}]",
                "CDK's BucketDeployment handler, which copies the repository's versioned model "
                "folders (never latest/) from the CDK assets bucket into models/ at deploy time, "
                "gets these grants from CDK.",
            )
        )
    uploads_id = _bucket_id(stack, stack.uploads.bucket)
    function_id = stack.get_logical_id(stack.uploads.function.node.default_child)  # type: ignore[arg-type]
    machine_id = stack.get_logical_id(stack.bulk.state_machine.node.default_child)  # type: ignore[arg-type]
    partition = _literal(stack.partition, "Partition")
    region, account = _literal(stack.region, "Region"), _literal(stack.account, "AccountId")
    executions = (
        f"arn:{partition}:states:{region}:{account}:execution:"
        f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine_id}"}}]}}]}}'
    )
    bulk_findings = [
        (
            f"Resource::<{uploads_id}.Arn>/*",
            "Bulk classification (`make classify-bucket`) reads whatever prefix of the uploads "
            "bucket its user names at run time, and the Distributed Map lists it and writes its "
            "run report there; the bucket is this stack's own.",
        ),
        (
            f"Resource::arn:<AWS::Partition>:s3:::<{uploads_id}>/*",
            "CDK's Distributed Map item reader and result writer grant object access on the "
            "bucket they list and report into, this stack's uploads bucket.",
        ),
        (
            f"Resource::<{function_id}.Arn>:*",
            "CDK's LambdaInvoke lets the state machine call the drop-folder function's versions "
            "and aliases (one function, this stack's).",
        ),
        (
            f"Resource::{executions}:*",
            "A Distributed Map manages its own child executions (CDK grants it on them only).",
        ),
        (
            f"Resource::{executions}/*:*",
            "A Distributed Map manages its own map runs (CDK grants it on them only).",
        ),
    ]
    for finding, reason in bulk_findings:
        accept.append((stack, f"AwsSolutions::AwsSolutions-IAM5[{finding}]", reason))
    accept.append(
        (
            stack.bulk.state_machine,
            "AwsSolutions-SF1",
            "The bulk state machine logs errors only: at ALL, a run over millions of objects "
            "would write several log events per object; results and a run report go to S3.",
        )
    )
    accept.append(
        (
            stack.bulk.state_machine,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords (the bulk state machine is "
            "traced) have no resource-level permissions: AWS documents Resource *.",
        )
    )
    if tracing:
        accept.append(
            (
                stack,
                "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                "X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level "
                "permissions: AWS documents Resource * for them (only when tracing is on).",
            )
        )
    for rollout in (stack.api.rollout, stack.uploads.rollout):
        hook_id = stack.get_logical_id(rollout.pre_traffic.node.default_child)  # type: ignore[arg-type]
        accept.append(
            (
                rollout.group,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{hook_id}.Arn>:*]",
                "CodeDeploy may invoke its own pre-traffic check function (any version of that "
                "one function): CDK's grant for a deployment group's hook.",
            )
        )
    models_arn = f"<{models_id}.Arn>"
    for finding, reason in (
        (
            "Resource::*",
            "ecr:GetAuthorizationToken has no resource-level permissions, and "
            "cloudwatch:PutMetricData is held to the /aws/sagemaker/TrainingJobs namespace by a "
            "condition.",
        ),
        (
            f"Resource::{models_arn}/{contract.TRAINING_SOURCE_PREFIX}*",
            "The training job reads the source archive `make train-cloud` uploads for it.",
        ),
        (
            f"Resource::<{uploads_id}.Arn>/{contract.LABELS_PREFIX}*",
            "The training job reads reviewers' labels for --corrections (labels/ only).",
        ),
        (
            f"Resource::{models_arn}/{contract.TRAINING_OUTPUT_PREFIX}*",
            "The training job writes SageMaker's model.tar.gz and output.tar.gz here.",
        ),
        (
            f"Resource::arn:{partition}:logs:{region}:{account}:log-group:"
            "/aws/sagemaker/TrainingJobs:*",
            "A training job writes its log streams into SageMaker's log group.",
        ),
    ):
        accept.append((stack.training.role, f"AwsSolutions::AwsSolutions-IAM5[{finding}]", reason))
    if stack.feedback.reviewer_policy is not None:
        api_id = stack.get_logical_id(stack.api.http_api.node.default_child)  # type: ignore[arg-type]
        accept.append(
            (
                stack.feedback.reviewer_policy,
                "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:"
                f"<AWS::Region>:<AWS::AccountId>:<{api_id}>/$default/POST/review/items/*]",
                "A reviewer labels any pending item: POST /review/items/{item_id}, one route.",
            )
        )
    if stack.feedback.token is not None:
        accept.append(
            (
                stack.feedback.token,
                "AwsSolutions-SMG4",
                "The reviewer token is a shared bearer token people paste into the review page; "
                "rotate it by deleting the secret's value and deploying again (docs/feedback.md).",
            )
        )
    for scope, rule, reason in accept:
        Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
