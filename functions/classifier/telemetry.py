"""Classification metrics, the same for the API and the drop folder (CloudWatch EMF).

Each classified image adds ``ImagesClassified``, ``ClassifyLatency``, ``Confidence``,
``Category_<name>``, ``NoneOfThese`` and ``Unsure`` (0 or 1: their sums over the count are the
shares the drift alarms compare with validation); each refused image ``ImagesRejected``. All
carry the ``ModelVersion`` that answered (``contract.DIMENSION_MODEL_VERSION``), so the
dashboard shows each model's mean confidence and the rollout's alarms watch the new model alone.
Metrics are written when the Lambda handler returns (``@telemetry.flushed``); outside Lambda
(``make serve``) nothing accumulates. The EMF documents are written here, not by Powertools'
Metrics: its import is a cold start's cost (issue 37), the format a page of AWS documentation
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from classifier import contract
from classifier.core import Prediction
from classifier.settings import in_lambda

Handler = TypeVar("Handler", bound=Callable[..., Any])
FUNCTION_VERSION = "AWS_LAMBDA_FUNCTION_VERSION"  # set by Lambda: the version answering
COUNT, MILLISECONDS, NO_UNIT = "Count", "Milliseconds", "None"
# CloudWatch takes at most 100 values per metric in one document: a fuller one is written then.
MOST_VALUES = 100


def emf_line(
    namespace: str, dimensions: dict[str, str], metrics: dict[str, tuple[str, list[float]]]
) -> str:
    """One CloudWatch Embedded Metric Format document: each metric's values under the
    dimensions given (one value as a number, several as a list)."""
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": n, "Unit": unit} for n, (unit, _) in metrics.items()],
                }
            ],
        },
        **dimensions,
    }
    for name, (_, values) in metrics.items():
        document[name] = values[0] if len(values) == 1 else values
    return json.dumps(document)


def _print(line: str) -> None:
    """One write per document: a log line from another thread cannot land inside it."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class ClassificationMetrics:
    """Thread-safe recording of classification outcomes, written as EMF documents when the
    invocation ends (Lambda's log lines become the metrics; no API call, nothing imported): the
    classifications' under their model version, the counts' under the function alone."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.metric_set: dict[str, tuple[str, list[float]]] = {}
        self.dimensions: dict[str, str] = {contract.DIMENSION_SERVICE: service}
        # Feedback and housekeeping counts (count()): per function, not per model version, in
        # a document of their own (the dashboard's feedback widget reads them by service).
        self.counts: dict[str, tuple[str, list[float]]] = {}
        self._lock = threading.Lock()

    def _enabled(self) -> bool:
        return in_lambda() and os.environ.get(contract.Env.METRICS_DISABLED, "").lower() != "true"

    def _add(self, name: str, unit: str, value: float, *, per_version: bool = True) -> None:
        _, values = (self.metric_set if per_version else self.counts).setdefault(name, (unit, []))
        values.append(float(value))
        if len(values) >= MOST_VALUES:
            self._write()

    def classified(self, prediction: Prediction, latency_ms: float) -> None:
        if not self._enabled():
            return
        with self._lock:
            self.dimensions[contract.DIMENSION_MODEL_VERSION] = prediction.model_version
            self._add(contract.METRIC_CLASSIFIED, COUNT, 1)
            self._add(contract.METRIC_LATENCY, MILLISECONDS, latency_ms)
            self._add(contract.METRIC_CONFIDENCE, NO_UNIT, prediction.confidence)
            self._add(f"{contract.METRIC_CATEGORY_PREFIX}{prediction.category}", COUNT, 1)
            self._add(contract.METRIC_NONE_OF_THESE, COUNT, int(prediction.none_of_these))
            self._add(contract.METRIC_UNSURE, COUNT, int(prediction.unsure))

    def rejected(self, model_version: str | None) -> None:
        if not self._enabled():
            return
        with self._lock:
            if model_version:
                self.dimensions[contract.DIMENSION_MODEL_VERSION] = model_version
            self._add(contract.METRIC_REJECTED, COUNT, 1)

    def server_error(self) -> None:
        """One 5xx answer, by the Lambda version that gave it: its own metric document, so the
        invocation's classification metrics keep their dimensions."""
        if not self._enabled():
            return
        version = os.environ.get(FUNCTION_VERSION, "$LATEST")
        dimensions = {
            contract.DIMENSION_SERVICE: self.service,
            contract.DIMENSION_FUNCTION_VERSION: version,
        }
        errors = {contract.METRIC_SERVER_ERRORS: (COUNT, [1.0])}
        _print(emf_line(contract.METRICS_NAMESPACE, dimensions, errors))

    def count(self, name: str) -> None:
        if not self._enabled():
            return
        with self._lock:
            self._add(name, COUNT, 1, per_version=False)

    def _write(self) -> None:
        if self.metric_set:
            _print(emf_line(contract.METRICS_NAMESPACE, self.dimensions, self.metric_set))
        if self.counts:
            service = {contract.DIMENSION_SERVICE: self.service}
            _print(emf_line(contract.METRICS_NAMESPACE, service, self.counts))
        self.metric_set, self.counts = {}, {}

    def flush(self) -> None:
        """Write what was recorded (a document per dimension set); nothing if empty."""
        with self._lock:
            self._write()
            self.dimensions = {contract.DIMENSION_SERVICE: self.service}

    def flushed(self, handler: Handler) -> Handler:
        """A Lambda handler that writes its invocation's metrics as it returns (or raises)."""

        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            finally:
                self.flush()

        return wrapper  # type: ignore[return-value]
