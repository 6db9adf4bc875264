"""Learning from reviewers' corrections: loading them, the held-out share, a real fine-tuning run
with --corrections, and the promotion gate's extra condition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from release.promote import Verdict
from tests.conftest import CLASSES, run_cli, synthetic_images
from training import corrections as fixes


def write_corrections(root: Path, n: int, none: int = 0, seed: int = 7) -> Path:
    """labels/<label>/<id>.png as the review API writes them (ids in its format)."""
    x, y = synthetic_images(n, seed=seed)
    for i, (pixels, label) in enumerate(zip(x, y)):
        folder = root / CLASSES[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{8_000_000_000_000 + i:013d}{i:08x}.png")
    rng = np.random.default_rng(seed)
    for i in range(none):
        (root / "none").mkdir(parents=True, exist_ok=True)
        noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(noise).save(root / "none" / f"{9_000_000_000_000 + i:013d}{i:08x}.png")
    return root


def test_corrections_load_by_label_with_none_apart(tmp_path: Path) -> None:
    folder = write_corrections(tmp_path / "labels", 40, none=5)
    found = fixes.load(folder, CLASSES, 32, str(folder))
    assert found.x.shape == (40, 32, 32, 3) and len(found.ids) == 40
    assert sorted(set(found.y.tolist())) == list(range(10))
    assert found.none_x.shape == (5, 32, 32, 3) and len(found.none_ids) == 5


def test_a_label_that_is_not_a_category_is_refused_naming_them(tmp_path: Path) -> None:
    folder = write_corrections(tmp_path / "labels", 10)
    (folder / "dragon").mkdir()
    with pytest.raises(SystemExit, match=r"labels dragon are not among the model's categories"):
        fixes.load(folder, CLASSES, 32, str(folder))


def test_the_held_out_share_is_fixed_by_content_and_about_a_quarter() -> None:
    digests = [f"{i:064x}" for i in range(4000)]
    held = [fixes.is_held_out(d) for d in digests]
    assert held == [fixes.is_held_out(d) for d in digests]  # the same in every run and gate
    assert abs(np.mean(held) - fixes.HELD_OUT_SHARE) < 0.03


def test_an_image_labelled_twice_is_never_both_trained_on_and_held_out(tmp_path: Path) -> None:
    folder = write_corrections(tmp_path / "labels", 60)
    for path in sorted((folder / "cat").iterdir()):  # each cat captured again under a new id
        (folder / "cat" / f"9{path.stem[1:]}.png").write_bytes(path.read_bytes())
    found = fixes.load(folder, CLASSES, 32, str(folder))
    sides: dict[str, set[bool]] = {}
    for digest, held in zip(found.digests, found.held_out()):
        sides.setdefault(digest, set()).add(bool(held))
    assert all(len(s) == 1 for s in sides.values()) and len(found.ids) == 66


def verdict(**changes: Any) -> Verdict:
    base: dict[str, Any] = {
        "candidate": "new",
        "current": "old",
        "candidate_accuracy": 0.90,
        "current_accuracy": 0.90,
        "tolerance": 0.002,
        "images": 10000,
        "data_fingerprint": "x",
        "decided": "now",
    }
    return Verdict(**{**base, **changes})


def test_a_candidate_from_corrections_must_beat_the_current_model_on_them() -> None:
    assert verdict().accepted  # no corrections: the base gate alone
    fields = {"corrections_images": 250, "corrections_current": 0.60}
    assert verdict(**fields, corrections_candidate=0.70).accepted
    assert not verdict(**fields, corrections_candidate=0.60).accepted  # equal is not better
    assert (
        "250 held-out corrections 60.00% <= 60.00%"
        in verdict(**fields, corrections_candidate=0.60).explain()
    )
    worse_on_base = verdict(**fields, corrections_candidate=0.9, candidate_accuracy=0.89)
    assert not worse_on_base.accepted  # the base test split's tolerance still holds


@pytest.mark.slow
def test_a_run_with_corrections_fine_tunes_holds_out_and_records_them(
    tiny_run: dict[str, Any], synthetic_data: dict[str, Any], tmp_path: Path
) -> None:
    folder = write_corrections(tmp_path / "labels", 80, none=12)
    out = tmp_path / "runs"
    command = ["-m", "training.train", "--data", str(synthetic_data["batches"])]
    command += ["--epochs", "2", "--widths", "8,16,16", "--batch-size", "16", "--out", str(out)]
    command += ["--tta", "mirror", "--corrections", str(folder)]
    command += ["--init-from", str(tiny_run["run_dir"])]
    done = run_cli(command, tmp_path / "cache")
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    recorded = manifest["corrections"]
    assert recorded["source"] == str(folder) and recorded["none_of_these"] == 12
    assert recorded["labelled"] == 80
    assert len(recorded["held_out"]) + recorded["trained_on"] == 80
    found = fixes.load(folder, CLASSES, 32, str(folder))
    assert recorded["held_out"] == sorted(i for i, h in zip(found.ids, found.held_out()) if h)
    assert 0 <= manifest["metrics"]["held_out_corrections_accuracy"] <= 1
    assert "its head kept" in done.stdout  # same labels: fine-tuned, not a new head
    # The base images learn from the served model's own answers too (400 synthetic images less
    # the validation split), at the recipe's weight.
    assert "soft targets: the served model's answers on 360 base images" in done.stdout
    assert manifest["recipe"]["corrections_distill"] == 0.5


def test_without_corrections_nothing_is_distilled(
    tiny_run: dict[str, Any],
) -> None:
    assert "soft targets" not in tiny_run["stdout"]


def test_an_s3_source_is_copied_exactly_even_into_an_earlier_copy(
    aws_env: None, tmp_path: Path
) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="labels-bucket")
        for key in ("labels/cat/a.png", "labels/dog/b.png", "labels/notes.txt"):
            s3.put_object(Bucket="labels-bucket", Key=key, Body=b"x")
        into = tmp_path / "copy"
        (into / "cat").mkdir(parents=True)
        (into / "cat" / "stale.png").write_bytes(b"from an earlier bucket")
        fixes.fetch("s3://labels-bucket/labels/", into)
        copied = sorted(p.relative_to(into).as_posix() for p in into.rglob("*") if p.is_file())
        assert copied == ["cat/a.png", "dog/b.png"]
