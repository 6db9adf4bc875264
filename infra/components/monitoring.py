"""Monitoring: alarms on Lambda errors and throttles, API 5xx and dead letters, to an SNS topic."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct


class Monitoring(Construct):
    """One alarm per failure a user would want to hear about; all notify one topic."""

    def __init__(self, scope: Construct, id_: str, *, alarm_email: str | None = None) -> None:
        super().__init__(scope, id_)
        self.topic = sns.Topic(
            self, "Alarms", display_name="CIFAR-10 classifier alarms", enforce_ssl=True
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"Bool": {"aws:SecureTransport": "false"}},
            )
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarms: list[cloudwatch.Alarm] = []

    def _alarm(self, id_: str, metric: cloudwatch.IMetric, description: str) -> None:
        alarm = cloudwatch.Alarm(
            self,
            id_,
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)

    def watch_function(self, name: str, function: lambda_.IFunction) -> None:
        period = Duration.minutes(5)
        self._alarm(
            f"{name}Errors",
            function.metric_errors(period=period),
            f"{name} Lambda raised errors in the last 5 minutes",
        )
        self._alarm(
            f"{name}Throttles",
            function.metric_throttles(period=period),
            f"{name} Lambda was throttled in the last 5 minutes",
        )

    def watch_api(self, api: apigw.HttpApi) -> None:
        self._alarm(
            "Api5xx",
            api.metric_server_error(period=Duration.minutes(5)),
            "The HTTP API answered 5xx in the last 5 minutes",
        )

    def watch_dead_letters(self, queue: sqs.IQueue) -> None:
        self._alarm(
            "DeadLetters",
            queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            "Uploads could not be classified after retries: see the dead-letter queue",
        )
