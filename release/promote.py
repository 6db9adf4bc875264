"""Promote a candidate model: a quality gate, then ``latest``, then the canary rollout.

    python -m release.promote <version> --bucket <ModelBucket> --data <CIFAR-10> [--no-rollout]
    python -m release.promote --rollback --bucket <ModelBucket> [--no-rollout]

A candidate is a ``models/<version>/`` folder in the model bucket (or a local folder laid out the
same way), written by ``make train-cloud`` or ``make publish``-like copies; it is never ``latest``.
Promotion, in order, stopping at the first refusal (non-zero exit, ``latest`` untouched):

1. the candidate loads as served, in a TensorFlow-free process (``release.verify``);
2. the gate: the candidate and the current model (the one ``latest`` names) are evaluated with the
   serving code on the same held-out split (the data set's test split, which no recipe trains or
   chooses on); the candidate must score at least the current accuracy minus ``--tolerance``;
3. a promotion record (both accuracies, the previous version) is written beside the candidate,
   then ``latest`` is moved, last, through the verified publishing path;
4. the rollout: ``cdk deploy --parameters ModelVersion=<version>`` publishes new function versions
   pinned to the model, and CodeDeploy shifts the ``live`` aliases to them (canary), rolling back
   by itself if the new version's alarms fire.

``--rollback`` returns to the model the current one replaced (its promotion record says which):
``latest`` is moved back and the same rollout runs with that version.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifier import contract
from classifier import manifest as mf
from classifier.core import ModelError

from release import ROOT
from release.cloud import stack_output
from release.publish import Destination, PublishError, point_latest, verify_in_serving_process
from training import serving_process

PROMOTION_RECORD = "promotion.json"
DEFAULT_TOLERANCE = 0.002  # 0.2 point: about the spread of one recipe between two runs


class PromotionRefused(RuntimeError):
    """The candidate may not replace the current model; ``latest`` was not moved."""


@dataclass(frozen=True)
class Verdict:
    candidate: str
    current: str | None
    candidate_accuracy: float
    current_accuracy: float | None
    tolerance: float
    images: int
    data_fingerprint: str
    decided: str
    # Per class: candidate minus current accuracy (points as fractions), for what got worse.
    per_class_change: dict[str, float] = field(default_factory=dict)
    # A candidate trained on reviewers' corrections must also beat the current model on the
    # share of them it held out (training/corrections.py), not just hold the base test split.
    corrections_images: int = 0
    corrections_candidate: float | None = None
    corrections_current: float | None = None

    @property
    def beats_on_corrections(self) -> bool:
        if self.corrections_candidate is None or self.corrections_current is None:
            return True
        return self.corrections_candidate > self.corrections_current

    @property
    def accepted(self) -> bool:
        if self.current_accuracy is None:
            return True
        holds = self.candidate_accuracy >= self.current_accuracy - self.tolerance
        return holds and self.beats_on_corrections

    def explain(self) -> str:
        if self.current_accuracy is None:
            return f"{self.candidate}: {self.candidate_accuracy:.2%}; no current model to beat"
        holds = self.candidate_accuracy >= self.current_accuracy - self.tolerance
        sign = ">=" if holds else "<"
        text = (
            f"{self.candidate} {self.candidate_accuracy:.2%} {sign} current {self.current} "
            f"{self.current_accuracy:.2%} - {self.tolerance * 100:.1f} pt tolerance "
            f"({self.images} held-out images)"
        )
        if self.corrections_candidate is not None and self.corrections_current is not None:
            sign = ">" if self.beats_on_corrections else "<="
            text += (
                f"; on {self.corrections_images} held-out corrections "
                f"{self.corrections_candidate:.2%} {sign} {self.corrections_current:.2%}"
            )
        return text

    def regressions(self, threshold: float = 0.02) -> str:
        """Classes the candidate gets more than ``threshold`` worse (a note, not a refusal)."""
        worse = sorted((d, name) for name, d in self.per_class_change.items() if d < -threshold)
        return ", ".join(f"{name} {d * 100:+.1f} pt" for d, name in worse)


def fetch(source: Destination, version: str, into: Path) -> Path:
    """Copy ``models/<version>/``'s manifest and model into ``into``; the local manifest path."""
    folder = into / version
    folder.mkdir(parents=True, exist_ok=True)
    try:
        raw = source.read(contract.model_key(version, contract.MANIFEST_NAME))
        manifest = mf.Manifest.from_bytes(raw)
        model_name = Path(manifest.model_path).name
        (folder / model_name).write_bytes(source.read(contract.model_key(version, model_name)))
    except ModelError as exc:
        raise PromotionRefused(
            f"{contract.MODELS_PREFIX}{version}/ is not a usable model: {exc}"
        ) from exc
    except OSError as exc:
        raise PromotionRefused(f"{contract.MODELS_PREFIX}{version}/ cannot be read: {exc}") from exc
    if manifest.model_path != model_name:  # a versioned folder names its model beside it
        raise PromotionRefused(f"{contract.MODELS_PREFIX}{version}/ names a model elsewhere")
    (folder / contract.MANIFEST_NAME).write_bytes(raw)  # the published manifest, as it is
    return folder / contract.MANIFEST_NAME


def current_version(source: Destination) -> str | None:
    """The version ``latest`` names, or None where nothing was published yet."""
    try:
        latest = json.loads(
            source.read(contract.model_key(contract.LATEST, contract.MANIFEST_NAME))
        )
    except FileNotFoundError:
        return None
    return str(latest["model_version"])


def evaluate_in_serving_process(
    manifest: Path, data: str | None, limit: int | None, arrays: Path | None = None
) -> dict[str, Any]:
    """``release.evaluate`` as ``make evaluate`` runs it, on a data set's test split or on
    ``arrays`` (an .npz of x and y)."""
    source = ["--arrays", str(arrays)] if arrays else ["--data", str(data)]
    try:
        return serving_process.evaluate(
            manifest, *source, *(["--limit", str(limit)] if limit else [])
        )
    except serving_process.ServingProcessError as exc:
        raise PromotionRefused(f"{manifest.parent.name} cannot be evaluated: {exc}") from exc


def gate(
    source: Destination,
    candidate: str,
    *,
    data: str | None,
    tolerance: float = DEFAULT_TOLERANCE,
    limit: int | None = None,
    current: str | None = None,
    arrays: Path | None = None,
) -> Verdict:
    """Evaluate the candidate against the current model (``current``, else the one latest
    names) on the same held-out images: ``data``'s test split, or ``arrays`` (the retraining
    pipeline's test split, decoded once)."""
    current = current or current_version(source)
    with tempfile.TemporaryDirectory() as tmp:
        candidate_manifest = fetch(source, candidate, Path(tmp))
        try:
            verify_in_serving_process(candidate_manifest)
        except PublishError as exc:
            raise PromotionRefused(str(exc)) from exc
        ours = evaluate_in_serving_process(candidate_manifest, data, limit, arrays)
        theirs = None
        current_manifest = None
        if current is not None and current != candidate:
            current_manifest = fetch(source, current, Path(tmp))
            theirs = evaluate_in_serving_process(current_manifest, data, limit, arrays)
        on_corrections = corrections_gate(candidate_manifest, current_manifest, Path(tmp))
    return Verdict(
        candidate=candidate,
        current=current if current != candidate else None,
        candidate_accuracy=ours["accuracy"],
        current_accuracy=theirs["accuracy"] if theirs else None,
        tolerance=tolerance,
        images=ours["images"],
        data_fingerprint=ours.get("data_fingerprint", ""),
        decided=datetime.now(UTC).isoformat(timespec="seconds"),
        per_class_change={
            name: round(accuracy - theirs["per_class"].get(name, 0.0), 4)
            for name, accuracy in ours["per_class"].items()
        }
        if theirs
        else {},
        **on_corrections,
    )


def corrections_gate(candidate: Path, current: Path | None, tmp: Path) -> dict[str, Any]:
    """Both models' accuracy on the corrections the candidate held out (none: no fields)."""
    import numpy as np

    from training import corrections as fixes
    from training.data import cache_dir

    recorded = json.loads(candidate.read_text()).get("corrections")
    if not recorded or not recorded.get("held_out"):
        return {}
    manifest = mf.Manifest.from_bytes(candidate.read_bytes())
    x, y = fixes.held_out_arrays(
        recorded["source"],
        list(manifest.class_names),
        manifest.input_shape[0],
        cache_dir() / "corrections-gate",
        recorded["held_out"],
    )
    arrays = tmp / "held-out-corrections.npz"
    np.savez(arrays, x=x, y=y)
    ours = evaluate_in_serving_process(candidate, None, None, arrays)["accuracy"]
    theirs = (
        evaluate_in_serving_process(current, None, None, arrays)["accuracy"] if current else None
    )
    return {
        "corrections_images": len(y),
        "corrections_candidate": ours,
        "corrections_current": theirs,
    }


def rollout_command(version: str, stack: str) -> list[str]:
    """The deploy that publishes function versions pinned to ``version``; CodeDeploy shifts them."""
    cdk = shlex.split(os.environ.get("CDK", "npx --yes aws-cdk@2.1148.1"))
    context = shlex.split(os.environ.get("CDK_ARGS", ""))  # the -c settings of `make deploy`
    return [
        *cdk,
        *context,
        "deploy",
        stack,
        "--parameters",
        f"ModelVersion={version}",
        "--require-approval",
        "never",
    ]


def roll_out(version: str, stack: str, *, run: bool) -> bool:
    """Deploy the stack with ``version``; False if the deploy failed (nothing changed then, or
    CloudFormation rolled the stack back after CodeDeploy's rollback)."""
    command = rollout_command(version, stack)
    shown = " ".join(command)
    if not run:
        print(f"rollout skipped (--no-rollout); to roll out: (cd infra && {shown})")
        return True
    print(f"rolling out: (cd infra && {shown})", flush=True)
    done = subprocess.run(command, cwd=ROOT / "infra")
    if done.returncode != 0:
        print(f"error: the rollout of {version} failed (exit {done.returncode})", file=sys.stderr)
        return False
    return True


def promote(
    candidate: str,
    destination: str,
    *,
    data: str,
    tolerance: float = DEFAULT_TOLERANCE,
    limit: int | None = None,
) -> Verdict:
    """Gate, record, move latest (last). Raises PromotionRefused, leaving latest alone."""
    source = Destination(destination)
    current = current_version(source)
    if current == candidate:
        raise PromotionRefused(
            f"{candidate} is already the current model (to deploy it again: "
            f"(cd infra && {' '.join(rollout_command(candidate, contract.STACK_NAME))}))"
        )
    verdict = gate(source, candidate, data=data, tolerance=tolerance, limit=limit, current=current)
    if not verdict.accepted:
        raise PromotionRefused(f"refused: {verdict.explain()}")
    record = json.dumps({**asdict(verdict), "previous": verdict.current}, indent=2) + "\n"
    source.write(contract.model_key(candidate, PROMOTION_RECORD), record.encode())
    try:
        point_latest(destination, candidate)
    except PublishError as exc:
        raise PromotionRefused(str(exc)) from exc
    return verdict


def rollback(destination: str) -> str:
    """Move latest back to the model the current one replaced; returns that version."""
    source = Destination(destination)
    current = current_version(source)
    if current is None:
        raise PromotionRefused("nothing is published (no models/latest): nothing to roll back")
    try:
        record = json.loads(source.read(contract.model_key(current, PROMOTION_RECORD)))
    except FileNotFoundError as exc:
        raise PromotionRefused(
            f"{current} has no promotion record, so its predecessor is unknown; promote the "
            "version you want with make promote VERSION=<version>"
        ) from exc
    previous = record.get("previous")
    if not previous:
        raise PromotionRefused(f"{current} was the first model promoted: there is no previous one")
    try:
        point_latest(destination, previous)
    except PublishError as exc:
        raise PromotionRefused(str(exc)) from exc
    return str(previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.promote", description=__doc__)
    parser.add_argument("version", nargs="?", help="the candidate, models/<version>/")
    parser.add_argument("--rollback", action="store_true", help="return to the previous model")
    parser.add_argument("--bucket", help="s3://bucket or a folder (default: the stack's bucket)")
    parser.add_argument("--data", help="a data set as for training; its test split is the gate's")
    parser.add_argument(
        "--limit", type=int, help="gate on a fixed random sample of N held-out images only"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"accuracy the candidate may lose (default {DEFAULT_TOLERANCE})",
    )
    parser.add_argument("--stack", default=os.environ.get("STACK", contract.STACK_NAME))
    parser.add_argument("--no-rollout", action="store_true", help="move latest only")
    args = parser.parse_args(argv)
    if bool(args.version) == args.rollback:
        parser.error("give a VERSION to promote, or --rollback")
    destination = args.bucket or f"s3://{stack_output(args.stack, 'ModelBucket')}"
    if not destination.startswith("s3://") and not Path(destination).is_dir():
        parser.error(f"--bucket {destination}: not s3://... and not a folder")
    previous = current_version(Destination(destination))
    try:
        if args.rollback:
            version = rollback(destination)
            print(f"latest -> {version} (rolled back)")
        else:
            if not args.data:
                parser.error("--data is needed for the gate (e.g. ../shared/datasets/cifar10-jpeg)")
            verdict = promote(
                args.version,
                destination,
                data=args.data,
                tolerance=args.tolerance,
                limit=args.limit,
            )
            version = args.version
            print(f"accepted: {verdict.explain()}")
            if verdict.regressions():
                print(f"note: worse on some classes: {verdict.regressions()}")
            print(f"latest -> {version}")
    except PromotionRefused as exc:
        print(f"error: {exc}; models/latest was not moved", file=sys.stderr)
        return 1
    if roll_out(version, args.stack, run=not args.no_rollout):
        return 0
    # The functions still serve the model they served before: latest must name it again.
    if previous and previous != version:
        point_latest(destination, previous)
        print(
            f"latest -> {previous} again: the functions still serve it; fix the cause and run "
            f"make {'rollback' if args.rollback else f'promote VERSION={version}'} again",
            file=sys.stderr,
        )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
