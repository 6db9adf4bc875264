"""Reviewers' corrections as training data: ``labels/<label>/<id>.<ext>`` in a bucket or a folder.

    python -m training.train --corrections s3://<UploadsBucket>/labels/ --epochs 3
    python -m training.train --corrections ~/labels

The labels are the model's categories or ``none`` ("none of these"). A fixed share of the
corrections, chosen by a hash of each item's id (so the same item is held out in every run and
in the gate), is held out: the promotion gate compares candidate and current model on it. The
rest join the base training split. ``none`` items are not a class: they join the validation
images the doubt threshold is fitted on as answers that are always wrong, so the model learns to
say "not sure" where reviewers said none of these fit.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from classifier import contract
from classifier.core import ImageError, image_to_array

HELD_OUT_SHARE = 0.25  # of the corrections, kept for the gate


@dataclass
class Corrections:
    source: str
    x: np.ndarray  # uint8 (N, H, W, 3), labelled with a category
    y: np.ndarray
    ids: list[str]
    none_x: np.ndarray  # the "none of these" items
    none_ids: list[str]
    skipped: int = 0

    digests: list[str] = field(default_factory=list)  # each labelled image's SHA-256

    def held_out(self) -> np.ndarray:
        """A boolean mask over ``x``: the items kept for the gate, chosen by image content, so
        an image captured twice (two ids) is never trained on and held out at once."""
        return np.array([is_held_out(d) for d in self.digests], bool)

    def summary(self) -> dict[str, Any]:
        mask = self.held_out()
        return {
            "source": self.source,
            "images": int(len(self.ids) + len(self.none_ids)),
            "labelled": len(self.ids),
            "none_of_these": len(self.none_ids),
            "held_out_share": HELD_OUT_SHARE,
            "held_out": sorted(i for i, m in zip(self.ids, mask) if m),
            "trained_on": int((~mask).sum()),
            "skipped_files": self.skipped,
        }


def is_held_out(image_sha256: str) -> bool:
    digest = hashlib.sha256(image_sha256.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELD_OUT_SHARE


def fetch(source: str, into: Path) -> Path:
    """A local folder of ``<label>/`` folders: ``source`` itself, or an S3 prefix copied."""
    if not source.startswith("s3://"):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise SystemExit(f"error: --corrections {source}: not a folder and not s3://...")
        return folder
    import boto3

    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    s3 = boto3.client("s3", endpoint_url=endpoint)
    into.mkdir(parents=True, exist_ok=True)
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            relative = entry["Key"].removeprefix(prefix)
            if relative.count("/") != 1:
                continue  # only <label>/<file>
            listed.add(relative)
            target = into / relative
            if target.exists() and target.stat().st_size == entry["Size"]:
                continue  # labels never change once written
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, entry["Key"], str(target))
    for stale in [p for p in into.rglob("*") if p.is_file()]:  # the copy is the bucket's, exactly
        if stale.relative_to(into).as_posix() not in listed:
            stale.unlink()
    return into


def load(
    folder: Path, class_names: tuple[str, ...] | list[str], size: int, source: str
) -> Corrections:
    """Decode every correction; labels must be the model's categories or ``none``."""
    allowed = set(class_names)
    unknown = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and p.name not in allowed | {contract.NONE_LABEL}
    )
    if unknown:
        raise SystemExit(
            f"error: --corrections {source}: labels {', '.join(unknown)} are not among the "
            f"model's categories ({', '.join(class_names)}) or {contract.NONE_LABEL!r}"
        )
    index = {name: i for i, name in enumerate(class_names)}
    xs, ys, ids, digests, none_x, none_ids, skipped = [], [], [], [], [], [], 0
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(label_dir.iterdir()):
            if not path.is_file():
                continue
            data = path.read_bytes()
            try:
                pixels = image_to_array(data, size=size)
            except ImageError:
                skipped += 1
                continue
            if label_dir.name == contract.NONE_LABEL:
                none_x.append(pixels)
                none_ids.append(path.stem)
            else:
                xs.append(pixels)
                ys.append(index[label_dir.name])
                ids.append(path.stem)
                digests.append(hashlib.sha256(data).hexdigest())
    empty = np.zeros((0, size, size, 3), np.uint8)
    return Corrections(
        source=source,
        x=np.stack(xs) if xs else empty,
        y=np.asarray(ys, np.int64),
        ids=ids,
        none_x=np.stack(none_x) if none_x else empty,
        none_ids=none_ids,
        skipped=skipped,
        digests=digests,
    )


def held_out_arrays(
    source: str, class_names: list[str], size: int, cache: Path, held_out: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The gate's images: the held-out corrections a manifest lists, fetched from its source."""
    loaded = load(fetch(source, cache), class_names, size, source)
    wanted = set(held_out)
    mask = np.array([i in wanted for i in loaded.ids], bool)
    return loaded.x[mask], loaded.y[mask]


def describe(corrections: Corrections) -> str:
    s = corrections.summary()
    return json.dumps({k: v for k, v in s.items() if k != "held_out"})
