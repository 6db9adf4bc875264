"""Load a TFLite model with LiteRT (ai-edge-litert), or with its predecessor tflite-runtime.

LiteRT is the default wherever it is installed: faster per int8 pass than tflite-runtime 2.14
on our model (docs/measurements.md), wheels for CPython 3.10-3.14 and NumPy 2. tflite-runtime
(CPython <= 3.11, NumPy 1, no release since 2023) serves the python3.11 target, which bundles
only it.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from classifier.core import Classifier, ModelError
from classifier.manifest import Manifest

RUNTIMES = ("ai-edge-litert", "tflite-runtime")  # the first installed is used


def _interpreter_class(prefer: str | None = None) -> tuple[Any, str]:
    """The Interpreter class of the first importable runtime (``prefer`` first if given)."""
    if prefer is not None and prefer not in RUNTIMES:
        raise ModelError(f"TFLite runtime {prefer!r} is unknown; choose one of {RUNTIMES}")
    order = [prefer] if prefer else list(RUNTIMES)
    for name in order:
        try:
            if name == "tflite-runtime":
                from tflite_runtime.interpreter import Interpreter
            else:
                from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            continue
        return Interpreter, f"{name} {metadata.version(name)}"
    raise ModelError(
        f"no TFLite runtime among {order} is installed: install tflite-runtime (Python <= 3.11) "
        "or ai-edge-litert (Python >= 3.10)"
    )


def runtime_name(prefer: str | None = None) -> str:
    """Which TFLite runtime this process uses, with its version."""
    return _interpreter_class(prefer)[1]


def load_classifier(
    model: bytes,
    manifest: Manifest,
    *,
    num_threads: int | None = None,
    runtime: str | None = None,
    **kwargs: Any,
) -> Classifier:
    """Check ``model`` against ``manifest`` and return a ready :class:`Classifier`.

    ``runtime`` picks "ai-edge-litert" or "tflite-runtime"; by default the first installed.
    """
    manifest.verify(model)
    interpreter_class, name = _interpreter_class(runtime)
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
        inference=manifest.inference,
        **kwargs,
    )
    if classifier.input_shape != manifest.input_shape:
        raise ModelError(
            f"the model's input shape {classifier.input_shape} differs from the manifest's "
            f"{manifest.input_shape}"
        )
    recorded = manifest.input_quantization
    actual = classifier.input_quantization
    if recorded and (abs(recorded[0] - actual.scale) > 1e-9 or recorded[1] != actual.zero_point):
        raise ModelError(
            f"the model's input quantisation (scale {actual.scale}, zero point "
            f"{actual.zero_point}) differs from the manifest's (scale {recorded[0]}, zero point "
            f"{recorded[1]})"
        )
    return classifier
