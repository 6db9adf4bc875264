"""training/cli.py: options make the recipe; --set types each field as the recipe does and
refuses a field it does not have, by name."""

from __future__ import annotations

import pytest

from training import cli
from training.job_types import RECIPES


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("corrections_freeze_batchnorm=true", True),
        ("corrections_freeze_batchnorm=0", False),
        ("widths=8,16,16", (8, 16, 16)),
        ("corrections_distill=0.75", 0.75),
        ("epochs=3", 3),
    ],
)
def test_set_types_a_field_as_the_recipe_does(item: str, expected: object) -> None:
    name, value = cli.set_field(RECIPES["default"], item)
    assert name == item.split("=")[0] and value == expected and type(value) is type(expected)


def test_set_refuses_a_field_the_recipe_does_not_have() -> None:
    with pytest.raises(SystemExit, match="no field 'epoch'"):
        cli.set_field(RECIPES["default"], "epoch=3")


def test_options_override_the_recipe() -> None:
    args = cli.parse_args(RECIPES, ["--epochs", "2", "--set", "teacher_weight=0.3"])
    recipe = cli.configure(args, RECIPES)
    assert recipe.epochs == 2 and recipe.teacher_weight == 0.3
    assert recipe.name == "default"
