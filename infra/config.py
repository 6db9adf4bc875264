"""The stack's settings: CDK context (`cdk deploy -c key=value` or cdk.json), parsed and checked
in one place so a bad value is refused by name before anything is synthesised."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from aws_cdk import aws_logs as logs
from classifier import contract
from classifier.contract import Env as env
from constructs import Construct

from infra.components.bundling import DEFAULT_TARGET, TARGETS
from infra.components.rollout import DEPLOYMENT_CONFIGS


@dataclass(frozen=True)
class Config:
    runtime: str = DEFAULT_TARGET  # python3.13 + LiteRT; "python3.13-arm64"; "python3.11-x86_64"
    # The ModelVersion parameter's default: the model a first deploy serves (models/<version>/).
    # None: the repository's published model (models/latest/manifest.json). Later deploys keep the
    # deployed value (the CDK CLI reuses parameters); `make promote` and `make rollback` set it.
    model_version: str | None = None
    # How CodeDeploy moves the live aliases to new versions: "canary" (10% for 5 minutes),
    # "linear" (10% more each minute) or "all-at-once"; alarms on the new version roll back.
    deployment: str = "canary"
    canary_p99_ms: int = 2000  # the new version's p99 duration above this rolls back
    min_mean_confidence: float = 0.4  # the new model's mean confidence below this rolls back
    max_rejected_percent: float = 50.0  # refused images above this share roll back
    api_rate_limit: int = 20  # requests per second, steady
    api_burst_limit: int = 40  # requests, burst
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    # Who may call the API: "none" (public, throttled), "iam" (SigV4-signed requests of IAM
    # principals) or "jwt" (a bearer token from jwtIssuer for jwtAudience: Cognito or any OIDC).
    auth: str = "none"
    jwt_issuer: str | None = None  # e.g. https://cognito-idp.<region>.amazonaws.com/<pool id>
    jwt_audience: list[str] = field(default_factory=list)  # e.g. the app client id
    api_memory_mb: int = 1024  # see README "Sizing": CPU share, not RAM, is what counts
    api_timeout_s: int = 10
    # Concurrency kept for the API alone, so a burst of uploads cannot throttle it. Off by
    # default: Lambda refuses a reservation that leaves the account fewer than 10 unreserved,
    # and new accounts often have a limit of 10 in all (docs/deploy.md, `make preflight`).
    api_reserved_concurrency: int | None = None
    # Cold-start options (README "Cold starts"): SnapStart snapshots the initialised function,
    # model loaded, on each published version (python3.12+ only); provisioned concurrency keeps
    # N API environments initialised on the alias. AWS does not allow both on one version.
    snap_start: bool = False
    provisioned_concurrency: int = 0
    uploads_memory_mb: int = 1024
    # Batches of 50 hide S3's round trips behind inference (more images/s per container than
    # batches of 10: docs/measurements.md); 120 s covers 50 of the costliest images.
    uploads_timeout_s: int = 120
    uploads_batch_size: int = 50
    uploads_max_concurrency: int = 5  # concurrent drop-folder functions (SQS: 2 to 1000)
    bulk_items_per_batch: int = 50  # objects per function call in `make classify-bucket`
    bulk_max_concurrency: int = 20  # batches at once
    bulk_tolerated_failure_percentage: int = 1  # failed batches (after retries) before it stops
    # Deliveries before a message goes to the dead-letter queue: throttled deliveries count
    # too, so AWS advises at least 5 for queues that feed Lambda.
    max_receive_count: int = 5
    results_days: int = 90  # results and old object versions expire after this
    async_uploads_days: int = 3  # images sent through POST /uploads are deleted after this
    log_retention_days: int = 30
    # The feedback loop (docs/feedback.md): which answers are kept for review. The API keeps
    # none unless asked ("unsure", or "all" at captureSample); the drop folder its unsure ones.
    capture: str = "none"
    capture_sample: float = 0.1
    capture_uploads: str = "unsure"
    capture_days: int = 30  # captured images and records expire after this
    # Labels are training data: kept a year by default, long enough that the retraining never
    # starves, short enough that nobody's picture is kept for ever.
    label_days: int = 365
    # Most items both functions together keep for review in an hour (a flood beyond it is
    # counted as CaptureLimited, not kept); a reviewer labels a few hundred an hour at most.
    capture_per_hour: int = env.DEFAULT_CAPTURE_PER_HOUR
    # auth=jwt: the claim a reviewer's token must carry, "<claim>=<value>" ("scope=review" is
    # also enforced by API Gateway on the review routes; e.g. "cognito:groups=reviewers").
    reviewer_claim: str = "scope=review"
    # Drift alarms (docs/monitoring.md): over this window, once this many answers were given,
    # the shares unsure and none of these more than drift_z standard errors from the served
    # model's validation figures, or a category mix further from them than chance allows.
    drift_window_hours: int = 24
    drift_min_answers: int = 200
    drift_z: float = 4.0
    # The drift baseline: "validation" (the served model's validation figures) or "traffic" (this
    # deployment's own answers over driftBaselineDays, read at each deploy; docs/deploy.md).
    drift_baseline: str = "validation"
    drift_baseline_days: int = 7
    # The retraining pipeline (docs/lifecycle.md): started by hand, on retrainSchedule (an
    # EventBridge expression, e.g. "rate(7 days)"), or daily once retrainMinLabels labels exist
    # that no model learnt; both off. A candidate the gate accepts is rolled out through the
    # canary only with retrainAutoPromote; otherwise the owner is told to run make promote.
    retrain_schedule: str | None = None
    retrain_min_labels: int = 0
    retrain_auto_promote: bool = False
    retrain_instance_type: str = "ml.g4dn.xlarge"
    retrain_spot: bool = True
    retrain_max_minutes: int = 120
    tracing: bool = False
    alarm_email: str | None = None

    @classmethod
    def from_context(cls, scope: Construct) -> Config:
        """Read each field from context under its camelCase name (strings from -c parsed)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = "".join(w.capitalize() if i else w for i, w in enumerate(f.name.split("_")))
            raw = scope.node.try_get_context(key)
            if raw is None:
                continue
            if isinstance(raw, str) and f.type not in ("str | None", "str"):
                raw = (
                    json.loads(raw)
                    if raw[:1] in "[{" or raw in ("true", "false", "null") or raw.isdigit()
                    else raw
                )
            values[f.name] = raw
        config = cls(**values)
        if config.runtime not in TARGETS:
            raise ValueError(
                f"context runtime={config.runtime!r}; expected one of {sorted(TARGETS)}"
            )
        if config.snap_start and not TARGETS[config.runtime].runtime.supports_snap_start:
            raise ValueError(
                f"context snapStart=true needs a python3.12+ runtime; runtime={config.runtime} "
                "has none (use python3.13-x86_64 or python3.13-arm64)"
            )
        if config.snap_start and config.provisioned_concurrency:
            raise ValueError(
                "context snapStart=true and provisionedConcurrency>0 cannot be combined: AWS "
                "does not allow both on one function version; choose one"
            )
        reserved = config.api_reserved_concurrency
        if reserved is not None and config.provisioned_concurrency > reserved:
            raise ValueError(
                f"context provisionedConcurrency={config.provisioned_concurrency} exceeds "
                f"apiReservedConcurrency={reserved}"
            )
        if config.deployment not in DEPLOYMENT_CONFIGS:
            raise ValueError(
                f"context deployment={config.deployment!r}; expected one of "
                f"{sorted(DEPLOYMENT_CONFIGS)}"
            )
        if not 0 < config.min_mean_confidence < 1:
            raise ValueError(
                f"context minMeanConfidence={config.min_mean_confidence}; a probability in (0, 1)"
            )
        if config.auth not in contract.AUTH_MODES:
            raise ValueError(f"context auth={config.auth!r}; expected one of {contract.AUTH_MODES}")
        if config.auth == "jwt" and not (config.jwt_issuer and config.jwt_audience):
            raise ValueError(
                "context auth=jwt needs jwtIssuer (the token issuer URL) and jwtAudience (a list, "
                "e.g. '[\"<app client id>\"]')"
            )
        if not (1 <= config.drift_window_hours <= 24 and config.drift_min_answers >= 30):
            raise ValueError(
                f"context driftWindowHours={config.drift_window_hours} (1 to 24, an alarm's "
                f"longest period is a day) and driftMinAnswers={config.drift_min_answers} (at "
                "least 30: fewer answers make the z-score meaningless)"
            )
        if not 2 <= config.uploads_max_concurrency <= 1000:
            raise ValueError(
                f"context uploadsMaxConcurrency={config.uploads_max_concurrency}; SQS event "
                "sources take 2 to 1000"
            )
        if config.max_receive_count < 5:
            raise ValueError(
                f"context maxReceiveCount={config.max_receive_count}; use at least 5 (throttled "
                "deliveries count as receives, and would dead-letter unprocessed images)"
            )
        for name, mode in (("capture", config.capture), ("captureUploads", config.capture_uploads)):
            if mode not in contract.CAPTURE_MODES:
                raise ValueError(
                    f"context {name}={mode!r}; expected one of {contract.CAPTURE_MODES}"
                )
        if not 0 < config.capture_sample <= 1:
            raise ValueError(f"context captureSample={config.capture_sample}; a share in (0, 1]")
        if config.capture_days < 1:
            raise ValueError(f"context captureDays={config.capture_days}; at least 1")
        if config.label_days < config.capture_days:
            raise ValueError(
                f"context labelDays={config.label_days}; at least captureDays "
                f"({config.capture_days}): a label must outlive the item it came from"
            )
        if config.capture_per_hour < 1:
            raise ValueError(f"context capturePerHour={config.capture_per_hour}; at least 1")
        claim, _, wanted = config.reviewer_claim.partition("=")
        if not claim or not wanted:
            raise ValueError(
                f"context reviewerClaim={config.reviewer_claim!r}; use <claim>=<value>, "
                "e.g. scope=review or cognito:groups=reviewers"
            )
        if config.async_uploads_days < 1:
            raise ValueError(f"context asyncUploadsDays={config.async_uploads_days}; at least 1")
        if config.api_reserved_concurrency is not None and config.api_reserved_concurrency < 1:
            raise ValueError(
                f"context apiReservedConcurrency={config.api_reserved_concurrency}; use at least "
                "1, or null to share the account's pool (0 would stop the API)"
            )
        # SEARCH finds only metrics that reported in the last two weeks.
        if config.drift_baseline not in ("validation", "traffic") or not (
            1 <= config.drift_baseline_days <= 14
        ):
            raise ValueError(
                f"context driftBaseline={config.drift_baseline!r} (validation or traffic) and "
                f"driftBaselineDays={config.drift_baseline_days} (1 to 14: CloudWatch's SEARCH "
                "sees two weeks)"
            )
        schedule = config.retrain_schedule
        if schedule and not re.fullmatch(r"(rate|cron)\(.+\)", schedule):
            raise ValueError(
                f"context retrainSchedule={schedule!r}; an EventBridge schedule such as "
                "'rate(7 days)' or 'cron(0 3 ? * MON *)'"
            )
        if config.retrain_min_labels < 0 or not 10 <= config.retrain_max_minutes <= 1440:
            raise ValueError(
                f"context retrainMinLabels={config.retrain_min_labels} (0: off, else the labels "
                f"a run needs) and retrainMaxMinutes={config.retrain_max_minutes} (10 to 1440)"
            )
        return config


RETENTION = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    731: "TWO_YEARS",
    1827: "FIVE_YEARS",
    3653: "TEN_YEARS",
}


def retention_days(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch Logs retention of at least ``days``."""
    chosen = next((d for d in sorted(RETENTION) if d >= days), 3653)
    return logs.RetentionDays[RETENTION[chosen]]
