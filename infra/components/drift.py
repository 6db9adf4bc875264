"""Drift alarms: the answers people get, against what the served model's validation predicts.

For each function (API, drop folder) and the served ``ModelVersion`` (a dimension of every
answer's metrics, so a promotion moves the alarms to the new model), over a window of
``driftWindowHours``, once at least ``driftMinAnswers`` answers were given:

* **unsure** and **none of these**: the count against the share the baseline predicts, as a
  z-score, ``|k - n p| / sqrt(n p (1 - p) (1 + n / m))``, above ``driftZ`` (chance alone: about
  7 in 100,000 windows at 4); m is the number of validation answers the share comes from, whose
  own error matters once n is as large;
* **category mix**: Pearson's chi-square distance between the live categories and the baseline
  mix, ``(sum(k_i^2 / (n p_i)) - n) / (1 + n / m)``, above its 1-in-10,000 value for nine degrees
  of freedom (CloudWatch metric math takes at most 10 metrics per alarm: ten category slots, and
  n is their sum).

The baseline (``infra/hooks/drift_baseline.py``: the served model's validation figures, or with
``driftBaseline=traffic`` the deployment's own last days) is read by a custom resource
each time ``ModelVersion`` changes; its figures enter the alarms' expressions as attributes, so
``make promote``'s update of that one parameter on the previous template moves them too. The
alarms notify the owner; they never roll a deployment back (a shift in what people send is not a
broken model). docs/deploy.md (Drift) says what to do when one fires.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from classifier import contract
from constructs import Construct

from infra import nag
from infra.components.rollout import HOOKS
from infra.hooks.drift_baseline import SLOTS

# Pearson's chi-square with SLOTS - 1 = 9 degrees of freedom exceeds this once in 10,000 windows
# of a mix that has not moved (scipy.stats.chi2.ppf(1 - 1e-4, 9)).
CHI_SQUARE_LIMIT = 33.72


# A traffic baseline needs this many answers; with fewer the validation figures serve (the
# baseline's own error enters every test through 1 + n/m).
TRAFFIC_MIN_ANSWERS = 1000


@dataclass(frozen=True)
class DriftSettings:
    window_hours: int = 24
    min_answers: int = 200
    z: float = 4.0
    baseline: str = "validation"  # or "traffic": the deployment's own last baseline_days
    baseline_days: int = 7


class Drift(Construct):
    """Six alarms (three per function) and the baseline they compare with."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        bucket: s3.IBucket,
        manifest_key: str,
        model_version: str,
        settings: DriftSettings,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id_)
        self.settings = settings
        self.model_version = model_version
        reader = lambda_.Function(
            self,
            "BaselineReader",
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="drift_baseline.handler",
            code=lambda_.Code.from_asset(
                str(HOOKS), exclude=["__pycache__", "*.pyc", "__init__.py"]
            ),
            timeout=Duration.seconds(30),
            memory_size=128,
            log_group=logs.LogGroup(self, "BaselineReaderLogs", retention=log_retention),
            description="Reads the drift alarms' baseline (validation answers, or traffic)",
        )
        if settings.baseline == "traffic":
            # GetMetricData has no resource-level permissions; it reads metrics only.
            reader.add_to_role_policy(
                iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"])
            )
            nag.accept_iam5(
                reader,
                "Resource::*",
                "cloudwatch:GetMetricData has no resource-level permissions (AWS documents "
                "Resource *); the reader sums this stack's answer metrics at deploy time.",
            )
        reader.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{contract.MODELS_PREFIX}*")],
            )
        )
        nag.accept_prefix(
            reader, bucket, f"{contract.MODELS_PREFIX}*", "any published model's manifest, read"
        )
        nag.acknowledge(
            reader,
            "AwsSolutions-IAM4",
            "The basic execution role (its own log group only) of a deploy-time reader.",
        )
        self.baseline = CustomResource(
            self,
            "Baseline",
            service_token=reader.function_arn,
            properties={
                "Bucket": bucket.bucket_name,
                "Key": manifest_key,  # contains ModelVersion: a promotion reads it again
                "CategoryPrefix": contract.METRIC_CATEGORY_PREFIX,
                "Mode": settings.baseline,
                "Days": str(settings.baseline_days),
                "MinAnswers": str(TRAFFIC_MIN_ANSWERS),
                "Namespace": contract.METRICS_NAMESPACE,
                "Dimensions": [contract.DIMENSION_MODEL_VERSION, contract.DIMENSION_SERVICE],
                "Answers": contract.METRIC_CLASSIFIED,
                "Unsure": contract.METRIC_UNSURE,
                "NoneOfThese": contract.METRIC_NONE_OF_THESE,
            },
        )
        self.alarms: list[cloudwatch.Alarm] = []
        for service in (contract.API_SERVICE, contract.UPLOADS_SERVICE):
            self._alarms_for(service)

    def attribute(self, name: str) -> str:
        return self.baseline.get_att_string(name)

    def _metric(self, name: str, service: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=contract.METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={
                contract.DIMENSION_SERVICE: service,
                contract.DIMENSION_MODEL_VERSION: self.model_version,
            },
            statistic="Sum",
            period=Duration.hours(self.settings.window_hours),
        )

    def share_z(self, metric: str, service: str) -> cloudwatch.MathExpression:
        """|k - n p| / sqrt(n p (1 - p) (1 + n / m)) once n reaches the minimum, else 0."""
        p = self.attribute("Unsure" if metric == contract.METRIC_UNSURE else "NoneOfThese")
        m = self.attribute("Images")
        n_min = self.settings.min_answers
        return cloudwatch.MathExpression(
            expression=(
                f"IF(n >= {n_min}, ABS(k - n * {p}) / SQRT(n * {p} * (1 - {p}) * (1 + n / {m})), 0)"
            ),
            using_metrics={
                "n": self._metric(contract.METRIC_CLASSIFIED, service),
                "k": self._metric(metric, service),
            },
            label=f"{metric} z-score",
            period=Duration.hours(self.settings.window_hours),
        )

    def mix_chi_square(self, service: str) -> cloudwatch.MathExpression:
        """(sum(k_i^2 / (n p_i)) - n) / (1 + n / m) over the category slots, n their sum, once n
        is enough."""
        slots = {
            f"c{i}": self._metric(self.attribute(f"Category{i}"), service) for i in range(SLOTS)
        }
        n = "(" + " + ".join(f"FILL({s}, 0)" for s in slots) + ")"
        terms = " + ".join(
            f"FILL({s}, 0) ^ 2 / {self.attribute(f'Share{i}')}" for i, s in enumerate(slots)
        )
        return cloudwatch.MathExpression(
            expression=(
                f"IF({n} >= {self.settings.min_answers}, "
                f"(({terms}) / {n} - {n}) / (1 + {n} / {self.attribute('Images')}), 0)"
            ),
            using_metrics=slots,
            label="category mix chi-square",
            period=Duration.hours(self.settings.window_hours),
        )

    def _alarms_for(self, service: str) -> None:
        short = "Api" if service == contract.API_SERVICE else "Uploads"
        window = f"{self.settings.window_hours} h"
        for metric, what in (
            (contract.METRIC_UNSURE, "answers flagged unsure"),
            (contract.METRIC_NONE_OF_THESE, "answers flagged none of these"),
        ):
            self._alarm(
                f"{short}{metric}Drift",
                self.share_z(metric, service),
                self.settings.z,
                f"{service}: the share of {what} over {window} is more than {self.settings.z} "
                "standard errors from what the served model's validation predicts "
                "(docs/deploy.md, Drift)",
            )
        self._alarm(
            f"{short}CategoryMixDrift",
            self.mix_chi_square(service),
            CHI_SQUARE_LIMIT,
            f"{service}: the categories answered over {window} have left the served model's "
            "validation mix by more than chance allows (chi-square over "
            f"{CHI_SQUARE_LIMIT}; docs/deploy.md, Drift)",
        )

    def _alarm(
        self, id_: str, expression: cloudwatch.MathExpression, threshold: float, text: str
    ) -> None:
        self.alarms.append(
            cloudwatch.Alarm(
                self,
                id_,
                metric=expression,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=text,
            )
        )

    def widgets(self) -> list[cloudwatch.IWidget]:
        """Live shares against the baseline (drawn as lines), per function."""
        hour = Duration.hours(1)
        graphs: list[cloudwatch.IWidget] = []
        for service in (contract.API_SERVICE, contract.UPLOADS_SERVICE):
            n = self._metric(contract.METRIC_CLASSIFIED, service).with_(period=hour)
            lines: list[cloudwatch.IMetric] = []
            for metric, attribute, label, k_id in (
                (contract.METRIC_UNSURE, "Unsure", "unsure", "unsure"),
                (contract.METRIC_NONE_OF_THESE, "NoneOfThese", "none of these", "none"),
            ):
                k = self._metric(metric, service).with_(period=hour)
                lines.append(
                    cloudwatch.MathExpression(
                        expression=f"{k_id} / n",
                        using_metrics={k_id: k, "n": n},
                        label=f"{label}, live",
                        period=hour,
                    )
                )
                lines.append(
                    cloudwatch.MathExpression(
                        expression=f"0 * n + {self.attribute(attribute)}",
                        using_metrics={"n": n},
                        label=f"{label}, validation",
                        period=hour,
                    )
                )
            graphs.append(
                cloudwatch.GraphWidget(
                    title=f"Drift ({service}): shares unsure and none of these, live and expected",
                    left=lines,
                    left_y_axis=cloudwatch.YAxisProps(min=0, max=1),
                    width=12,
                )
            )
        return graphs
