"""Monitoring: alarms to an SNS topic, and one CloudWatch dashboard of the whole service.

Alarms: Lambda errors and throttles, API 5xx, dead letters, and each rollout's alarms (which also
roll a deployment back). The dashboard: requests, latency p50/p99, errors, throttles, the
dead-letter queue, classifications per category and mean confidence per model version.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from classifier import contract
from constructs import Construct

# Every (metric, model version, service) series of the functions' own metrics.
# The feedback metrics are counted per function, not per model version.
SERVICE_SCHEMA = f"{{{contract.METRICS_NAMESPACE},{contract.DIMENSION_SERVICE}}}"
SCHEMA = (
    f"{{{contract.METRICS_NAMESPACE},{contract.DIMENSION_MODEL_VERSION},"
    f"{contract.DIMENSION_SERVICE}}}"
)


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
        # A topic policy replaces the default one, which let the account's services publish:
        # without this statement CloudWatch alarms could not reach the topic at all.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
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

    def notify(self, alarms: Sequence[cloudwatch.IAlarm]) -> None:
        """Also tell the topic when these (e.g. a rollout's) alarms fire."""
        for alarm in alarms:
            if isinstance(alarm, cloudwatch.Alarm):
                alarm.add_alarm_action(actions.SnsAction(self.topic))

    def dashboard(
        self,
        *,
        api: apigw.HttpApi,
        functions: dict[str, lambda_.IFunction],
        dead_letters: sqs.IQueue,
    ) -> cloudwatch.Dashboard:
        """One page: is it up, how fast, what does it answer, and which model answers."""
        minute = Duration.minutes(1)
        five = Duration.minutes(5)

        def search(metric_filter: str, statistic: str, label: str) -> cloudwatch.SearchExpression:
            return cloudwatch.SearchExpression(
                expression=f"SEARCH('{SCHEMA} {metric_filter}', '{statistic}', 300)",
                label=label,
                period=five,
            )

        board = cloudwatch.Dashboard(
            self,
            "Dashboard",
            default_interval=Duration.hours(3),
            period_override=cloudwatch.PeriodOverride.AUTO,
        )
        board.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests",
                left=[api.metric_count(period=minute, label="requests")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API latency (ms)",
                left=[
                    api.metric_latency(period=minute, statistic="p50", label="p50"),
                    api.metric_latency(period=minute, statistic="p99", label="p99"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Errors",
                left=[
                    api.metric_client_error(period=minute, label="API 4xx"),
                    api.metric_server_error(period=minute, label="API 5xx"),
                    *(
                        fn.metric_errors(period=minute, label=f"{name} errors")
                        for name, fn in functions.items()
                    ),
                ],
                width=8,
            ),
        )
        board.add_widgets(
            cloudwatch.GraphWidget(
                title="Function duration p50 / p99 (ms)",
                left=[
                    fn.metric_duration(period=minute, statistic=stat, label=f"{name} {stat}")
                    for name, fn in functions.items()
                    for stat in ("p50", "p99")
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Throttles",
                left=[
                    fn.metric_throttles(period=minute, label=f"{name} throttles")
                    for name, fn in functions.items()
                ],
                width=8,
            ),
            cloudwatch.SingleValueWidget(
                title="Dead-letter queue depth",
                metrics=[
                    dead_letters.metric_approximate_number_of_messages_visible(
                        period=minute, label="uploads that failed after retries"
                    )
                ],
                width=8,
            ),
        )
        board.add_widgets(
            cloudwatch.GraphWidget(
                title="Classifications per category",
                left=[search("Category_", "Sum", "")],
                stacked=True,
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Mean confidence per model version",
                left=[
                    search(
                        f'MetricName="{contract.METRIC_CONFIDENCE}"', "Average", "mean confidence"
                    )
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1),
                width=12,
            ),
        )
        board.add_widgets(
            cloudwatch.GraphWidget(
                title="Images classified, rejected, none of these and unsure per model version",
                left=[
                    search(f'MetricName="{contract.METRIC_CLASSIFIED}"', "Sum", "classified"),
                    search(f'MetricName="{contract.METRIC_REJECTED}"', "Sum", "rejected"),
                    search(f'MetricName="{contract.METRIC_NONE_OF_THESE}"', "Sum", "none of these"),
                    search(f'MetricName="{contract.METRIC_UNSURE}"', "Sum", "unsure"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Classify latency per model version (ms, p99)",
                left=[search(f'MetricName="{contract.METRIC_LATENCY}"', "p99", "p99")],
                width=12,
            ),
        )
        board.add_widgets(
            cloudwatch.GraphWidget(
                title="Feedback: answers captured for review, capture failures, labels",
                left=[
                    cloudwatch.SearchExpression(
                        expression=f"SEARCH('{SERVICE_SCHEMA} MetricName=\"{name}\"', 'Sum', 300)",
                        label=label,
                        period=five,
                    )
                    for name, label in (
                        (contract.METRIC_CAPTURED, "captured"),
                        (contract.METRIC_CAPTURE_FAILED, "capture failed"),
                        (contract.METRIC_LABELLED, "labelled"),
                    )
                ],
                width=24,
            ),
        )
        self.board = board
        return board

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
