"""Classification metrics, the same for the API and the drop folder (CloudWatch EMF).

Each classified image adds ``ImagesClassified``, ``ClassifyLatency``, ``Confidence``,
``Category_<name>``, ``NoneOfThese`` and ``Unsure`` (0 or 1: their sums over the count are the
shares the drift alarms compare with validation); each refused image ``ImagesRejected``. All
carry the ``ModelVersion`` that answered (``contract.DIMENSION_MODEL_VERSION``), so the
dashboard shows each model's mean confidence and the rollout's alarms watch the new model alone.
Metrics are written when the Lambda handler returns (``@telemetry.flushed``); outside Lambda
(``make serve``) nothing accumulates.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from classifier import contract
from classifier.core import Prediction
from classifier.settings import in_lambda

Handler = TypeVar("Handler", bound=Callable[..., Any])
FUNCTION_VERSION = "AWS_LAMBDA_FUNCTION_VERSION"  # set by Lambda: the version answering


class ClassificationMetrics:
    """Thread-safe recording of classification outcomes into one Powertools ``Metrics``."""

    def __init__(self, service: str) -> None:
        self.metrics = Metrics(namespace=contract.METRICS_NAMESPACE, service=service)
        self._lock = threading.Lock()

    def _enabled(self) -> bool:
        return in_lambda()

    def classified(self, prediction: Prediction, latency_ms: float) -> None:
        if not self._enabled():
            return
        with self._lock:
            m = self.metrics
            m.add_dimension(contract.DIMENSION_MODEL_VERSION, prediction.model_version)
            m.add_metric(name=contract.METRIC_CLASSIFIED, unit=MetricUnit.Count, value=1)
            m.add_metric(
                name=contract.METRIC_LATENCY, unit=MetricUnit.Milliseconds, value=latency_ms
            )
            m.add_metric(
                name=contract.METRIC_CONFIDENCE, unit=MetricUnit.NoUnit, value=prediction.confidence
            )
            m.add_metric(
                name=f"{contract.METRIC_CATEGORY_PREFIX}{prediction.category}",
                unit=MetricUnit.Count,
                value=1,
            )
            m.add_metric(
                name=contract.METRIC_NONE_OF_THESE,
                unit=MetricUnit.Count,
                value=int(prediction.none_of_these),
            )
            m.add_metric(
                name=contract.METRIC_UNSURE, unit=MetricUnit.Count, value=int(prediction.unsure)
            )

    def rejected(self, model_version: str | None) -> None:
        if not self._enabled():
            return
        with self._lock:
            if model_version:
                self.metrics.add_dimension(contract.DIMENSION_MODEL_VERSION, model_version)
            self.metrics.add_metric(name=contract.METRIC_REJECTED, unit=MetricUnit.Count, value=1)

    def server_error(self) -> None:
        """One 5xx answer, by the Lambda version that gave it: its own metric document, so the
        invocation's classification metrics keep their dimensions."""
        if not self._enabled():
            return
        version = os.environ.get(FUNCTION_VERSION, "$LATEST")
        with single_metric(
            name=contract.METRIC_SERVER_ERRORS,
            unit=MetricUnit.Count,
            value=1,
            namespace=contract.METRICS_NAMESPACE,
            default_dimensions={contract.DIMENSION_SERVICE: self.metrics.service or ""},
        ) as metric:
            metric.add_dimension(contract.DIMENSION_FUNCTION_VERSION, version)

    def count(self, name: str) -> None:
        if not self._enabled():
            return
        with self._lock:
            self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

    def flush(self) -> None:
        """Write what was recorded (one EMF document); nothing, and no warning, if empty."""
        with self._lock:
            if self.metrics.metric_set:
                self.metrics.flush_metrics()  # prints unless POWERTOOLS_METRICS_DISABLED
            self.metrics.clear_metrics()

    def flushed(self, handler: Handler) -> Handler:
        """A Lambda handler that writes its invocation's metrics as it returns (or raises)."""

        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            finally:
                self.flush()

        return wrapper  # type: ignore[return-value]
