"""How a component acknowledges a cdk-nag AwsSolutions finding it accepts, with its reason.

Each component acknowledges its own findings where it makes the resource or the grant they are
about (``acknowledge``, ``accept_iam5``, ``accept_prefix``); a test fails on any finding that is
neither fixed nor acknowledged with a written reason.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, DefaultStackSynthesizer, Stack, Token, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept ``rule``'s findings on ``scope`` and everything under it, for ``reason``."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def accept_iam5(scope: IConstruct, finding: str, reason: str) -> None:
    """Accept one wildcard (IAM5) finding, as cdk-nag names it, e.g. ``Resource::*``."""
    acknowledge(scope, f"AwsSolutions::AwsSolutions-IAM5[{finding}]", reason)


def logical_id(construct: IConstruct) -> str:
    """The logical id of a construct's resource, as cdk-nag prints it in a finding."""
    return Stack.of(construct).get_logical_id(construct.node.default_child)  # type: ignore[arg-type]


def accept_prefix(scope: IConstruct, bucket: IConstruct, prefix: str, what: str) -> None:
    """Accept a grant on one key prefix of ``bucket`` (``prefix`` ends in ``*``)."""
    finding = f"Resource::<{logical_id(bucket)}.Arn>/{prefix}"
    accept_iam5(scope, finding, f"Scoped to one prefix, {prefix}: {what}.")


def literal(value: str, name: str) -> str:
    """How cdk-nag prints ``value`` in a finding: itself, or <AWS::Name> while it is a token."""
    return f"<AWS::{name}>" if Token.is_unresolved(value) else value


def assets_bucket_arn(stack: Stack) -> str:
    """The CDK assets bucket's ARN as cdk-nag prints it (concrete parts when known)."""
    qualifier = (
        stack.node.try_get_context("@aws-cdk/core:bootstrapQualifier")
        or DefaultStackSynthesizer.DEFAULT_QUALIFIER
    )
    partition = literal(stack.partition, "Partition")
    account, region = literal(stack.account, "AccountId"), literal(stack.region, "Region")
    return f"arn:{partition}:s3:::cdk-{qualifier}-assets-{account}-{region}"
