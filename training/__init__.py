"""The training job and its tools (TensorFlow is imported inside functions, never at import)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
