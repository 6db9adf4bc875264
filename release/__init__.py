"""The road from a training run's folder to a served model, TensorFlow-free: evaluate as served,
calibrate, verify, publish, gate, promote, roll back, and launch the cloud job."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
