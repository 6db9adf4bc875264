"""Model store: the bucket the training job publishes to and the Lambdas read models from.

One writer of ``models/latest/``: the publishing path (``release.publish``). A deploy copies the
repository's versioned model folders (immutable, named by version and hash) but never
``latest/``; it seeds ``models/latest/manifest.json`` only where the bucket has none, by an S3
conditional write (``If-None-Match: *``), so a ``cdk deploy`` cannot replace a published model.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import custom_resources as cr
from classifier import contract
from constructs import Construct

from infra import nag

ROOT = Path(__file__).resolve().parents[2]
MODELS_PREFIX = contract.MODELS_PREFIX
LATEST_KEY = contract.model_key(contract.LATEST, contract.MANIFEST_NAME)
# The conditional write's refusal when latest exists: the expected outcome, not a failure.
ALREADY_PUBLISHED = "PreconditionFailed|ConditionalRequestConflict"


def secure_bucket(
    scope: Construct, id_: str, *, access_logs: s3.IBucket | None, log_prefix: str, **kwargs: object
) -> s3.Bucket:
    """Encrypted, versioned, private, TLS-only, retained on stack deletion."""
    return s3.Bucket(
        scope,
        id_,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=log_prefix if access_logs else None,
        removal_policy=RemovalPolicy.RETAIN,
        **kwargs,  # type: ignore[arg-type]
    )


class ModelStore(Construct):
    """An S3 bucket of models; the first deploy uploads the repository's published model."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        access_logs: s3.IBucket,
        models_dir: Path = ROOT / "models",
        model_version: str | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, id_)
        self.bucket = secure_bucket(
            self, "Bucket", access_logs=access_logs, log_prefix="models-bucket/"
        )
        self.prefix = MODELS_PREFIX
        version = model_version or "latest"
        self.manifest_key = contract.model_key(version, contract.MANIFEST_NAME)
        self.deployment: s3deploy.BucketDeployment | None = None
        self.seed: cr.AwsCustomResource | None = None
        if any(models_dir.glob("*/manifest.json")):
            # prune=False: models published later by `training.train --upload` stay put;
            # latest/ is excluded: publishing moves it, a deploy never does.
            self.deployment = s3deploy.BucketDeployment(
                self,
                "PublishedModel",
                sources=[s3deploy.Source.asset(str(models_dir), exclude=[contract.LATEST])],
                destination_bucket=self.bucket,
                destination_key_prefix=MODELS_PREFIX,
                exclude=[f"{contract.LATEST}/*"],
                prune=False,
                retain_on_delete=True,
                log_group=logs.LogGroup(self, "DeploymentLogs", retention=log_retention),
            )
            self._acknowledge_deployment()
        latest = models_dir / contract.LATEST / contract.MANIFEST_NAME
        if self.deployment is not None and latest.is_file():
            self.seed = self._seed_latest(latest.read_text(), log_retention)
            self.seed.node.add_dependency(self.deployment)  # the model files first

    def _seed_latest(
        self, manifest: str, log_retention: logs.RetentionDays
    ) -> cr.AwsCustomResource:
        """Write the repository's latest manifest only if the bucket has no latest yet."""
        call = cr.AwsSdkCall(
            service="S3",
            action="putObject",
            parameters={
                "Bucket": self.bucket.bucket_name,
                "Key": LATEST_KEY,
                "Body": manifest,
                "ContentType": "application/json",
                "IfNoneMatch": "*",
            },
            physical_resource_id=cr.PhysicalResourceId.of(f"seed-{LATEST_KEY}"),
            ignore_error_codes_matching=ALREADY_PUBLISHED,
        )
        return cr.AwsCustomResource(
            self,
            "SeedLatest",
            on_create=call,
            on_update=call,  # a newer repository model changes Body; still only if absent
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["s3:PutObject"],
                        resources=[self.bucket.arn_for_objects(LATEST_KEY)],
                    )
                ]
            ),
            log_group=logs.LogGroup(self, "SeedLogs", retention=log_retention),
            install_latest_aws_sdk=False,
        )

    def _acknowledge_deployment(self) -> None:
        """CDK's BucketDeployment handler is one function for the stack, with CDK's grants."""
        stack = Stack.of(self)
        for finding in (
            "Action::s3:Abort*",
            "Action::s3:DeleteObject*",
            "Action::s3:GetBucket*",
            "Action::s3:GetObject*",
            "Action::s3:List*",
            f"Resource::<{nag.logical_id(self.bucket)}.Arn>/*",
            f"Resource::{nag.assets_bucket_arn(stack)}/*",
        ):
            nag.accept_iam5(
                stack,
                finding,
                "CDK's BucketDeployment handler, which copies the repository's versioned model "
                "folders (never latest/) from the CDK assets bucket into models/ at deploy time, "
                "gets these grants from CDK.",
            )

    @property
    def manifest_uri(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{self.manifest_key}"

    def grant_read_models(self, grantee: lambda_.IFunction) -> None:
        """Read model objects, nothing else (no listing, no writing)."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects(f"{MODELS_PREFIX}*")],
            )
        )
        nag.accept_prefix(grantee, self.bucket, f"{MODELS_PREFIX}*", "the model objects, read-only")
