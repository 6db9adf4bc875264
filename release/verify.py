"""Check a model before it is published: its manifest, its file and a first answer, as served.

    python -m release.verify path/to/manifest.json     (or s3://bucket/models/<v>/manifest.json)

Runs in its own process, which never imports TensorFlow (tflite-runtime cannot share a process
with it): the model is loaded through the serving code (``classifier.service.load_model``, which
checks the schema, size and sha256 against the manifest and the input quantisation against the
model), then classifies a grey image and must give one probability per class summing to 1.
Exit status 0 and a JSON line on success; 1 and the reason on failure.
"""

from __future__ import annotations

import argparse
import io
import json
import sys

import numpy as np
from classifier import service
from classifier.core import ModelError
from PIL import Image


def verify(manifest_uri: str) -> dict[str, object]:
    """The loaded model's version, runtime and first answer; raises ModelError if unusable."""
    classifier = service.load_model(manifest_uri)
    image = io.BytesIO()
    Image.new("RGB", (classifier.image_size,) * 2, (128, 128, 128)).save(image, "PNG")
    prediction = classifier.predict(image.getvalue())
    total = sum(prediction.probabilities.values())
    if len(prediction.probabilities) != len(classifier.class_names) or not np.isclose(total, 1):
        raise ModelError(f"the model's first answer is not a distribution: {prediction}")
    return {
        "model_version": classifier.model_version,
        "runtime": classifier.runtime,
        "first_answer": prediction.category,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.verify", description=__doc__)
    parser.add_argument("manifest", help="a manifest.json path or s3:// URI")
    args = parser.parse_args(argv)
    if "tensorflow" in sys.modules:  # pragma: no cover - a guard for future imports
        print("error: release.verify must run without TensorFlow", file=sys.stderr)
        return 1
    try:
        print(json.dumps(verify(args.manifest)))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
