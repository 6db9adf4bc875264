"""The fit loop: SGD in airbench's units and its schedule, lookahead, the whitening bias's
freeze, a time budget, and ``model.fit`` resumable from its backup with one log line per epoch."""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.augmentation import batches, report_batches
from training.network import outputs_logits
from training.progress import log

if TYPE_CHECKING:
    from training.job_types import Data, Recipe


def compile_model(model: Any, recipe: Recipe, steps_per_epoch: int) -> None:
    import keras

    if recipe.optimizer == "adam":
        optimizer: Any = keras.optimizers.Adam(learning_rate=recipe.learning_rate)
    else:
        # airbench's units to Keras's: a mean (not summed) loss and decoupled weight decay.
        # Nesterov steps are (1 + 1/(1 - momentum)) times the gradient in the long run.
        kilostep = 1024 * (1 + 1 / (1 - recipe.momentum))
        peak = recipe.learning_rate * recipe.batch_size / kilostep
        optimizer = keras.optimizers.SGD(
            learning_rate=LinearWarmupDown(
                peak,
                recipe.epochs * steps_per_epoch,
                recipe.warmup_fraction,
                recipe.lr_start,
                recipe.lr_end,
            ),
            momentum=recipe.momentum,
            nesterov=True,
            weight_decay=recipe.weight_decay * kilostep / (1024 * recipe.learning_rate),
        )
    logits = outputs_logits(model)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=logits, label_smoothing=recipe.label_smoothing
        ),
        metrics=["accuracy"],
    )


def LinearWarmupDown(peak: float, total: int, warmup: float, start: float, end: float) -> Any:
    """Linear from start*peak to peak over the warm-up, then linear down to end*peak."""
    import keras

    @keras.saving.register_keras_serializable(package="classifier")
    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step: Any) -> Any:
            ops = keras.ops
            step = ops.cast(step, "float32")
            up = max(1, int(total * warmup))
            rise = start + (1 - start) * step / up
            fall = 1 - (1 - end) * (step - up) / max(1, total - up)
            return peak * ops.where(step < up, rise, ops.maximum(fall, end))

        def get_config(self) -> dict[str, Any]:
            return {}

    return Schedule()


def fit_model(
    model: Any,
    recipe: Recipe,
    data: Data,
    photos: np.ndarray | None,
    backup: Path | None,
) -> tuple[dict[str, list[float]], float]:
    """model.fit over the recipe's epochs; resumable from ``backup`` (Keras BackupAndRestore).
    Returns the history of every epoch, earlier sessions' too, and those sessions' seconds."""

    val = (
        data.x_val.astype(np.float32),
        np.eye(len(data.class_names), dtype=np.float32)[data.y_val],
    )
    import keras

    # A diverged run (loss NaN) stops at once and fails by name, not after its last epoch.
    callbacks: list[Any] = [keras.callbacks.TerminateOnNaN()]
    if recipe.architecture == "report-cnn":
        train_data = report_batches(recipe, data.x_train, data.y_train)
        steps = -(-len(data.x_train) // recipe.batch_size)
    else:
        soft: np.ndarray | None
        if recipe.teachers:
            from training.teachers import teacher_answers

            soft = teacher_answers(recipe.teachers, data.x_train, data.y_train)
        else:
            soft = served_answers(model, recipe, data)
        train_data = batches(recipe, data.x_train, data.y_train, photos, soft)
        steps = len(train_data)
        callbacks.append(freeze_whiten_bias(recipe))
        if recipe.lookahead_every:
            callbacks.append(lookahead(recipe, recipe.epochs * steps))
    if recipe.early_stopping_patience:
        callbacks.append(early_stopping(recipe.early_stopping_patience))
    if recipe.time_budget_minutes:
        callbacks.append(time_budget(recipe.time_budget_minutes))
    if data.corrections is not None and recipe.corrections_freeze_batchnorm:
        freeze_batchnorm(model)
    epoch_log = EpochLog(backup.parent / EPOCH_LOG) if backup is not None else None
    if backup is not None and epoch_log is not None:
        callbacks += [backup_and_restore(backup), epoch_log]  # the log line follows the backup
    history = model.fit(
        train_data,
        validation_data=val,
        validation_batch_size=1000,
        epochs=recipe.epochs,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    losses = [float(v) for v in history.history.get("loss", [])]
    if losses and not np.isfinite(losses[-1]):
        raise SystemExit(
            f"error: training diverged: the loss is {losses[-1]} in epoch {len(losses)} (learning "
            f"rate {recipe.learning_rate:g}); lower it with --set learning_rate=..."
        )
    if epoch_log is None:
        return {k: [float(v) for v in vs] for k, vs in history.history.items()}, 0.0
    rows = epoch_log.rows()
    earlier = sum(r["seconds"] for r in rows if r["epoch"] not in epoch_log.written)
    return {k: [r[k] for r in rows] for k in history.history}, earlier


def freeze_batchnorm(model: Any) -> None:
    """Every BatchNormalization layer normalises with its moving statistics and keeps them (in
    Keras 3 a non-trainable BatchNormalization runs in inference mode; ours have no weights)."""
    import keras

    frozen, layers = 0, list(model.layers)
    while layers:
        layer = layers.pop()
        layers.extend(getattr(layer, "layers", []))  # a nested model's own layers
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            frozen += 1
    log("build", f"BatchNorm: {frozen} layers keep the served model's statistics")


def served_answers(model: Any, recipe: Recipe, data: Data) -> np.ndarray | None:
    """When refining the served model on corrections: its own answers (softmax of its logits)
    on each base training image as it is and mirrored, as soft targets that keep it answering
    clean images as it did while it learns the corrections (learning without forgetting; the
    corrections' own rows keep their labels). None otherwise."""
    if data.corrections is None or recipe.corrections_distill <= 0 or data.base_train is None:
        return None
    if not outputs_logits(model):
        return None
    n_classes = len(data.class_names)
    soft = np.repeat(np.eye(n_classes, dtype=np.float32)[data.y_train][:, None], 2, axis=1)
    base = data.x_train[: data.base_train].astype(np.float32)
    for side, images in enumerate((base, base[:, :, ::-1])):
        logits = model.predict(images, batch_size=1000, verbose=0).astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        soft[: data.base_train, side] = exp / exp.sum(axis=1, keepdims=True)
    agree = float((soft[: data.base_train, 0].argmax(1) == data.y_train[: data.base_train]).mean())
    log(
        "build",
        f"soft targets: the served model's answers on {data.base_train} base images (right on "
        f"{agree:.1%}), blended at {recipe.corrections_distill:g} with their labels",
    )
    return soft


def early_stopping(patience: int) -> Any:
    """The report's EarlyStopping: on validation loss, back to the best epoch's weights."""
    import keras

    return keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True, verbose=1
    )


def backup_and_restore(backup: Path) -> Any:
    """Keras's backup of the fit, gone once trained. A session stopped while the backup is
    written must not lose the run: keep the previous epoch's backup too where Keras can (3.10+)."""
    import keras

    double = "double_checkpoint" in inspect.signature(keras.callbacks.BackupAndRestore).parameters
    return keras.callbacks.BackupAndRestore(
        str(backup), **({"double_checkpoint": True} if double else {})
    )


EPOCH_LOG = "epochs.jsonl"


def EpochLog(path: Path) -> Any:
    """One JSON line per finished epoch in the run folder (metrics and seconds), so a run resumed
    in a later session still reports every epoch and its whole training time."""
    import keras

    class Log(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.written: set[int] = set()  # epochs finished in this session

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            row = {"epoch": epoch, "seconds": round(time.monotonic() - self.started, 2)}
            row.update({k: float(v) for k, v in (logs or {}).items()})
            with path.open("a") as out:
                out.write(json.dumps(row) + "\n")
            self.written.add(epoch)

        def rows(self) -> list[dict[str, float]]:
            """Each epoch once (a rerun epoch's last line wins), in order."""
            by_epoch = {}
            for line in path.read_text().splitlines():
                row = json.loads(line)
                by_epoch[row["epoch"]] = row
            return [by_epoch[e] for e in sorted(by_epoch)]

    return Log()


def lookahead(recipe: Recipe, total_steps: int) -> Any:
    """Every few steps, the weights (and BatchNorm statistics) move to their running average."""
    import keras

    class Lookahead(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.step = int(self.model.optimizer.iterations.numpy())  # resumed runs
            self.tracked = [w for w in self.model.weights if not w.path.endswith("/open")]
            self.average = [np.array(w.numpy()) for w in self.tracked]

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step += 1
            if self.step % recipe.lookahead_every and self.step < total_steps:
                return
            fraction = min(1.0, self.step / total_steps)
            decay = (
                1.0
                if self.step >= total_steps
                else (recipe.lookahead_decay * fraction**recipe.lookahead_power)
            )
            for w, avg in zip(self.tracked, self.average):
                avg *= decay
                avg += (1 - decay) * w.numpy()
                w.assign(avg)

    return Lookahead()


def freeze_whiten_bias(recipe: Recipe) -> Any:
    import keras

    class FreezeWhitenBias(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            gate = self.model.get_layer("whiten_bias").open
            gate.assign(1.0 if epoch < recipe.whiten_bias_epochs else 0.0)

    return FreezeWhitenBias()


def time_budget(minutes: float) -> Any:
    """A callback that stops training once ``minutes`` of wall time are spent (equal-time runs)."""
    import keras

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if time.monotonic() - self.started > minutes * 60:
                print(f"time budget of {minutes:g} min spent after epoch {epoch + 1}")
                self.model.stop_training = True

    return TimeBudget()
