"""ReviewStore: the review store's rules and who may write labels (the runtime beside it:
functions/classifier/review_store.py).

Captured answers and private copies of their images live under ``review/`` in the uploads
bucket (encrypted, never public, like the rest of it) and expire after ``captureDays``; labels
under ``labels/`` after ``labelDays`` (a year by default: they are training data). Writing a
label needs a reviewer's credential in every auth mode: with ``auth=none`` a token this
component generates in Secrets Manager (the API reads it; people read it with ``aws
secretsmanager get-secret-value``, and name more reviewers by adding ``"name": "<token>"``
pairs to it), with ``auth=iam`` the :attr:`reviewer_policy` it outputs (the review routes
alone), with ``auth=jwt`` a claim (API Gateway enforces a ``scope=`` claim on the review routes;
the API checks any claim, exactly).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from classifier import contract
from classifier.contract import Env as env
from constructs import Construct

from infra import nag
from infra.components.grants import list_under
from infra.config import Config


class ReviewStore(Construct):
    """Capture settings for both functions, the review store's grants, the reviewer's key."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        bucket: s3.Bucket,
        api_function: lambda_.Function,
        uploads_function: lambda_.Function,
        config: Config,
    ) -> None:
        super().__init__(scope, id_)
        auth, capture, capture_uploads = config.auth, config.capture, config.capture_uploads
        self.bucket = bucket
        bucket.add_lifecycle_rule(
            id="ExpireCapturedAnswers",
            prefix=contract.REVIEW_PREFIX,
            expiration=Duration.days(config.capture_days),
            noncurrent_version_expiration=Duration.days(1),
        )
        bucket.add_lifecycle_rule(
            id="ExpireLabels",
            prefix=contract.LABELS_PREFIX,
            expiration=Duration.days(config.label_days),
            noncurrent_version_expiration=Duration.days(1),
        )
        for function, mode in ((api_function, capture), (uploads_function, capture_uploads)):
            function.add_environment(env.REVIEW_BUCKET, bucket.bucket_name)
            function.add_environment(env.CAPTURE, mode)
            function.add_environment(env.CAPTURE_PER_HOUR, str(config.capture_per_hour))
        api_function.add_environment(env.CAPTURE_SAMPLE, str(config.capture_sample))
        api_function.add_environment(env.REVIEWER_CLAIM, config.reviewer_claim)
        review = bucket.arn_for_objects(f"{contract.REVIEW_PREFIX}*")
        # Capture: the seen mark, the hour's count, the private copy and the record.
        uploads_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources=[review]
            )
        )
        store = "the review store: records, private copies, seen marks, hourly counts and label "
        store += "claims (all expire)"
        for function in (uploads_function, api_function):
            nag.accept_prefix(function, bucket, f"{contract.REVIEW_PREFIX}*", store)
        nag.accept_prefix(
            api_function,
            bucket,
            f"{contract.LABELS_PREFIX}*",
            "labels: the API copies a labelled image under labels/<label>/, written only",
        )
        nag.accept_prefix(
            api_function,
            bucket,
            f"{contract.UPLOADS_PREFIX}*",
            "a label reads the drop folder's upload an older item points at, read-only",
        )
        labels = bucket.arn_for_objects(f"{contract.LABELS_PREFIX}*")
        uploads = bucket.arn_for_objects(f"{contract.UPLOADS_PREFIX}*")
        api_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources=[review]
            )
        )
        api_function.add_to_role_policy(  # a label copies its image (an upload, by version)
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[uploads, review]
            )
        )
        api_function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[labels])
        )
        # Listing held to the pending items. S3 then answers a GET of a missing review key with
        # AccessDenied, not NoSuchKey (review.py reads that as missing: the role may GET them).
        api_function.add_to_role_policy(list_under(bucket, f"{contract.REVIEW_ITEMS_PREFIX}*"))
        self.token: secretsmanager.Secret | None = None
        self.reviewer_policy: iam.ManagedPolicy | None = None
        if auth == "none":
            self.token = secretsmanager.Secret(
                self,
                "ReviewerToken",
                description="The bearer token the review page and POST /review/items/{id} need",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    secret_string_template="{}",  # noqa: S106 (an empty JSON template)
                    generate_string_key="token",
                    exclude_punctuation=True,
                    password_length=40,
                ),
                removal_policy=RemovalPolicy.DESTROY,
            )
            self.token.grant_read(api_function)
            nag.acknowledge(
                self.token,
                "AwsSolutions-SMG4",
                "The reviewer tokens are bearer tokens people paste into the review page; "
                "rotate one by giving its name a new value in the secret (docs/feedback.md).",
            )
            api_function.add_environment(env.REVIEWER_TOKEN_SECRET, self.token.secret_arn)

    def grant_read_labels(self, role: iam.IRole) -> None:
        """The training job reads reviewers' labels (``--corrections``), nothing else here."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadReviewersLabels",
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects(f"{contract.LABELS_PREFIX}*")],
            )
        )
        role.add_to_principal_policy(
            list_under(self.bucket, f"{contract.LABELS_PREFIX}*", sid="ListReviewersLabels")
        )
        nag.accept_prefix(
            role,
            self.bucket,
            f"{contract.LABELS_PREFIX}*",
            "The training job reads reviewers' labels for --corrections (labels/ only)",
        )

    def grant_review_routes(self, http_api: apigw.HttpApi, auth: str) -> None:
        """auth=iam: a managed policy that may call the review routes and nothing else."""
        if auth != "iam":
            return
        self.reviewer_policy = iam.ManagedPolicy(
            self,
            "ReviewerPolicy",
            description="Attach to reviewers: may list and label captured answers (review/*)",
            statements=[
                iam.PolicyStatement(
                    actions=["execute-api:Invoke"],
                    resources=[
                        http_api.arn_for_execute_api("GET", "/review/items", "$default"),
                        http_api.arn_for_execute_api("POST", "/review/items/*", "$default"),
                    ],
                )
            ],
        )
        nag.accept_iam5(
            self.reviewer_policy,
            "Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
            f"<{nag.logical_id(http_api)}>/$default/POST/review/items/*",
            "A reviewer labels any pending item: POST /review/items/{item_id}, one route.",
        )
