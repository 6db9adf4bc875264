"""IAM statements the components repeat."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3


def list_under(bucket: s3.IBucket, *prefixes: str, sid: str | None = None) -> iam.PolicyStatement:
    """ListBucket held to keys starting with ``prefixes`` (each a key, or ending in ``*``).

    With it, S3 answers a GET of a missing key under them with NoSuchKey, not AccessDenied, and
    nothing else in the bucket can be listed."""
    return iam.PolicyStatement(
        sid=sid,
        actions=["s3:ListBucket"],
        resources=[bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": list(prefixes)}},
    )
