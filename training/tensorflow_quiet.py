"""Importing TensorFlow quietly: its start-up banners are noise, failures still raise.

Kept apart from ``training.train`` so that file reads as the training job only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def native_output_captured() -> Iterator[None]:
    """Hold what native code writes to stdout/stderr (file descriptors 1 and 2) meanwhile; show
    it only if the block fails. TensorFlow's importers and converter print banners there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 1)
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up noise off the screen; what matters still raises.

    TF_CPP_MIN_LOG_LEVEL=3 (unless set) hides the C++ log: on a CPU machine its lines are
    "failed call to cuInit: CUDA error" (no GPU, as expected), oneDNN and absl notices. A C++
    failure that matters surfaces as a Python exception anyway. Two Python warnings are silenced
    by message because they do not apply here: the converter's missing input statistics (the
    int8 input range comes from the representative images) and tf.lite.Interpreter's deprecation
    (used only to read tensor details here; serving uses LiteRT).
    """
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass


def import_tensorflow(seed: int) -> None:
    """Import TensorFlow and Keras quietly, and seed them."""
    quiet_tensorflow()
    with native_output_captured():  # "Could not find cuda drivers", absl's pre-init notice
        import keras
        import tensorflow  # noqa: F401

    keras.utils.set_random_seed(seed)
