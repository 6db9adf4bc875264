"""Distillation: published models' answers on the training images, as soft targets.

A recipe with ``teachers`` (model versions under models/, or folders with a manifest, each
for every seed or, as ``<seed>:<version>``, for one seed's run) blends
their answers into each training image's label at ``teacher_weight``. The teachers answer as
they are served: the serving code runs their int8 model under LiteRT in a process that never
imports TensorFlow (``python -m training.teachers``), on the image as it is and mirrored; their
logits are averaged over the teachers (an ensemble), then softmax at temperature 1. Only the
student's own training images are asked, and a teacher must have held out the same validation
split, so no validation or test image reaches the student through a teacher.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from classifier import contract
from classifier.core import softmax

from training import ROOT
from training.progress import log

SEED_PREFIX = re.compile(r"^\d+:")  # "0:<version>": a teacher for seed 0's run
TEACHER_VIEWS = "mirror"  # as they are and mirrored: two of the six served views, a third the cost


def folder_of(name: str) -> Path:
    """A teacher named by version (models/<version>) or by its folder (made absolute: the
    teachers run in a process started from the repository)."""
    return Path(name).resolve() if Path(name).is_dir() else ROOT / "models" / name


def teacher_folder(name: str) -> Path:
    """The folder of a teacher, which must hold a manifest."""
    folder = folder_of(name)
    if not (folder / contract.MANIFEST_NAME).is_file():
        raise SystemExit(f"error: teacher {name!r}: no {contract.MANIFEST_NAME} in {folder}")
    return folder


def names_of(teachers: str, seed: int | None = None) -> list[str]:
    """The teachers a recipe names, comma-separated. ``<seed>:<version>`` names a teacher for
    that seed's run only (a teacher must have held out its student's split, and a split follows
    its seed); with ``seed`` None, every teacher named."""
    names = []
    for entry in (e.strip() for e in teachers.split(",")):
        for_seed, _, name = entry.rpartition(":") if SEED_PREFIX.match(entry) else ("", "", entry)
        if name and (seed is None or not for_seed or int(for_seed) == seed):
            names.append(name)
    return names


def for_seed(teachers: str, seed: int) -> str:
    """The recipe's teachers for this seed's run, as the run records them."""
    return ",".join(names_of(teachers, seed))


def applicable(
    names: str,
    class_names: tuple[str, ...],
    image_size: int,
    fingerprint: str,
    split: tuple[int, float, int, int],
) -> str | None:
    """Why these teachers cannot teach this run (None: they can). Each must be here, have been
    trained on this data set (their answers on other images, even of the same labels, are no
    better than guesses), answer with its labels in its order at its input size, and have held
    out the same validation split (``split``: seed, fraction, training and validation images):
    a teacher that trained on the student's validation images would carry them into it, and
    the temperature and thresholds fitted there would promise more than they keep."""
    if not names_of(names):
        return "no teacher named"
    for name in names_of(names):
        folder = folder_of(name)
        if not (folder / contract.MANIFEST_NAME).is_file():
            return f"teacher {name} is not in {folder.parent}"
        manifest = json.loads((folder / contract.MANIFEST_NAME).read_text())
        if manifest["data"]["fingerprint_sha256"] != fingerprint:
            return f"teacher {name} was trained on another data set"
        if tuple(manifest["class_names"]) != tuple(class_names):
            return f"teacher {name} answers with other labels"
        if manifest["input"]["shape"][0] != image_size:
            return f"teacher {name} takes {manifest['input']['shape'][0]}px images"
        recipe, data = manifest["recipe"], manifest["data"]
        held_out = (recipe["seed"], recipe["validation_fraction"])
        if (*held_out, data["train_images"], data["validation_images"]) != split:
            return f"teacher {name} held out another validation split (it trained on this one's)"
    return None


def ensemble_logits(folders: list[Path], images: np.ndarray) -> np.ndarray:
    """The teachers' logits as the serving code computes them over TEACHER_VIEWS, averaged over
    the teachers (run this in the serving process: LiteRT, no TensorFlow)."""
    from dataclasses import replace

    from classifier.manifest import Manifest, resolve
    from classifier.runtime import load_classifier

    answers = []
    for folder in folders:
        manifest = Manifest.from_bytes((folder / contract.MANIFEST_NAME).read_bytes())
        if manifest.inference.outputs != "logits":
            raise SystemExit(f"error: teacher {folder.name} outputs probabilities, not logits")
        model = Path(
            resolve(str(folder / contract.MANIFEST_NAME), manifest.model_path)
        ).read_bytes()
        classifier = load_classifier(model, manifest, num_threads=os.cpu_count())
        classifier.inference = replace(classifier.inference, tta=TEACHER_VIEWS)
        answers.append(classifier.predict_outputs(images, batch_size=500))
    return np.mean(answers, axis=0, dtype=np.float32)


def teacher_answers(names: str, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Soft targets (images x 2 x classes, the layout of the training batches: as they are,
    mirrored) from the teachers' ensemble; both sides get its two-view answer."""
    from training.serving_process import ServingProcessError, failure_reason, run

    folders = [teacher_folder(n) for n in names_of(names)]
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "images.npy", images)
        done = run(
            "training.teachers",
            *(str(f) for f in folders),
            "--images",
            str(Path(tmp) / "images.npy"),
            "--out",
            str(Path(tmp) / "logits.npy"),
        )
        if done.returncode != 0:
            raise ServingProcessError(failure_reason(done))
        probs = softmax(np.load(Path(tmp) / "logits.npy")).astype(np.float32)
    agree = float((probs.argmax(1) == labels).mean())
    log(
        "build",
        f"soft targets: {len(folders)} teacher(s) ({', '.join(f.name for f in folders)}) on "
        f"{len(images)} training images, two views each (right on {agree:.1%})",
    )
    return np.repeat(probs[:, None], 2, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description="The teachers' ensemble logits (LiteRT).")
    parser.add_argument("teachers", nargs="+", type=Path, help="model folders")
    parser.add_argument("--images", type=Path, required=True, help="uint8 images, .npy")
    parser.add_argument("--out", type=Path, required=True, help="logits, .npy")
    args = parser.parse_args()
    np.save(args.out, ensemble_logits(args.teachers, np.load(args.images)))


if __name__ == "__main__":
    main()
