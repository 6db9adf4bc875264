"""training/network.py: the whitening layer's filters whiten, the net answers one logit per
label, and the published model's float weights are found where the recipe can use them."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import run_python
from training import network
from training.job_types import RECIPES


def test_the_whitening_filters_decorrelate_the_patches() -> None:
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 3))
    x[..., 1] += 2 * x[..., 0]  # correlated channels
    kernel = network.whitening_kernel(x, 2, 1e-6)
    assert kernel.shape == (2, 2, 3, 24)  # each eigenvector, + and -
    patches = np.stack(
        [x[:, dy : dy + 7, dx : dx + 7] for dy in range(2) for dx in range(2)], axis=3
    ).reshape(-1, 12)
    whitened = (patches - patches.mean(0)) @ kernel.reshape(12, 24)[:, :12]
    assert np.allclose(np.cov(whitened, rowvar=False), np.eye(12), atol=0.05)


def test_the_published_model_fits_the_default_recipe_and_not_another_width() -> None:
    assert network.compatible_published_model(RECIPES["default"]) is not None
    narrow = replace(RECIPES["default"], widths=(8, 16, 16))
    assert network.compatible_published_model(narrow) is None


BUILD_CHECK = """
import json
from dataclasses import replace
import numpy as np
from training.tensorflow_quiet import import_tensorflow
import_tensorflow(0)
from training import network
from training.job_types import RECIPES
recipe = replace(RECIPES["default"], widths=(8, 16, 16), precision="float32")
x = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
model = network.build_model(recipe, x, 5)
print(json.dumps({"shape": list(model.predict(x.astype("float32"), verbose=0).shape),
                  "logits": network.outputs_logits(model)}))
"""


@pytest.mark.slow
def test_the_net_answers_one_logit_per_label() -> None:
    done = run_python("-c", BUILD_CHECK, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"shape": [16, 5], "logits": True}
