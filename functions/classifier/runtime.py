"""Load a TFLite model with tflite-runtime, or with its successor ai-edge-litert on Python 3.12+."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from classifier.core import Classifier, ModelError
from classifier.manifest import Manifest


def _interpreter_class() -> tuple[Any, str]:
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, f"tflite-runtime {metadata.version('tflite-runtime')}"
    except ImportError:
        pass
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai-edge-litert {metadata.version('ai-edge-litert')}"
    except ImportError as exc:
        raise ModelError(
            "no TFLite runtime is installed: install tflite-runtime (Python <= 3.11) "
            "or ai-edge-litert (Python >= 3.10)"
        ) from exc


def runtime_name() -> str:
    """Which TFLite runtime this process uses, with its version."""
    return _interpreter_class()[1]


def load_classifier(
    model: bytes, manifest: Manifest, *, num_threads: int | None = None, **kwargs: Any
) -> Classifier:
    """Check ``model`` against ``manifest`` and return a ready :class:`Classifier`."""
    manifest.verify(model)
    interpreter_class, name = _interpreter_class()
    try:
        interpreter = interpreter_class(model_content=model, num_threads=num_threads)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{name} cannot load model {manifest.model_version}: {exc}") from exc
    classifier = Classifier(
        interpreter,
        class_names=manifest.class_names,
        model_version=manifest.model_version,
        runtime=name,
        metadata=manifest.raw,
        **kwargs,
    )
    if classifier.input_shape != manifest.input_shape:
        raise ModelError(
            f"the model's input shape {classifier.input_shape} differs from the manifest's "
            f"{manifest.input_shape}"
        )
    recorded = manifest.raw.get("input", {}).get("quantization")
    actual = classifier.input_quantization
    if recorded and (
        abs(float(recorded["scale"]) - actual.scale) > 1e-9
        or int(recorded["zero_point"]) != actual.zero_point
    ):
        raise ModelError(
            f"the model's input quantisation (scale {actual.scale}, zero point "
            f"{actual.zero_point}) differs from the manifest's {recorded}"
        )
    return classifier
