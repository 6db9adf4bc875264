"""`make train` makes the published model: the default recipe is the one models/latest records."""

from __future__ import annotations

import json
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any

import numpy as np

from tests.conftest import PUBLISHED
from training import train as t

# Not training settings: the seed is the one thing a user varies (two seeds are published), and
# the description is prose about the recipe.
NOT_COMPARED = {"seed", "description"}
# Fields added after the published model was trained: guards on publishing, not on the model.
NEWER_THAN_THE_PUBLISHED_MODEL = {
    "max_int8_loss",
    "corrections_repeat",
    "corrections_lr_scale",
    "corrections_distill",
    "corrections_freeze_batchnorm",
    "outlier_fraction",
}


def resolved_default(manifest: dict[str, Any]) -> dict[str, Any]:
    """The default recipe as `make train --seed <its seed>` resolves it for the data set the
    published model learnt (its teacher is chosen by the seed, and must fit that data)."""
    n_train, n_val = manifest["data"]["train_images"], manifest["data"]["validation_images"]
    names = tuple(manifest["class_names"])
    data: Any = SimpleNamespace(
        x_train=np.zeros((n_train, 1), np.uint8),
        y_train=np.arange(n_train) % len(names),
        x_val=np.zeros((n_val, 1), np.uint8),
        class_names=names,
        fingerprint=manifest["data"]["fingerprint_sha256"],
        corrections=None,
    )
    seed = manifest["recipe"]["seed"]
    recipe = t.adapt(t.options(["--seed", str(seed)])[1], data)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items()}


def test_the_default_recipe_is_the_published_models_field_by_field() -> None:
    manifest = json.loads(PUBLISHED.read_text())
    recorded = manifest["recipe"]
    default = resolved_default(manifest)
    missing = set(default) - set(recorded) - NEWER_THAN_THE_PUBLISHED_MODEL
    assert not missing, f"the manifest predates these recipe fields: {sorted(missing)}"
    differing = {
        name: (default[name], recorded[name])
        for name in recorded.keys() - NOT_COMPARED
        if default.get(name) != recorded[name]
    }
    assert differing == {}, f"default recipe vs {manifest['model_version']}: {differing}"


def test_the_recipe_reads_in_groups_and_is_recorded_flat() -> None:
    from dataclasses import fields as fields_of

    from training import job_types as types

    groups = (types.Architecture, types.Schedule, types.Augmentation, types.Choices)
    groups += (types.StartingPoint, types.Corrections, types.Distillation)
    grouped = [f.name for group in groups for f in fields_of(group)]
    assert len(grouped) == len(set(grouped))  # each field in one group
    assert set(grouped) | {"name", "description"} == {f.name for f in fields_of(t.Recipe)}
    recorded = asdict(t.RECIPES["default"])
    assert all(not isinstance(v, dict) for v in recorded.values())  # flat, as manifests hold it


def test_every_manifest_ever_published_still_loads_its_recipe() -> None:
    from tests.conftest import ROOT
    from training import cli

    manifests = sorted(ROOT.glob("models/*/manifest.json")) + sorted(
        ROOT.glob("docs/models/*/manifest.json")
    )
    assert len(manifests) >= 8  # the shipped model, its teachers, and those that left the tree
    for path in manifests:
        recipe = cli.recorded(t.RECIPES["default"], path)
        assert recipe.name and recipe.widths, path
