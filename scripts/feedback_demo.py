"""The feedback loop end to end, offline: capture, review, learn, gate, promote.

    make feedback-demo                       # python -m scripts.feedback_demo

1. A local S3 (moto server) and the local API server with capture on (``CAPTURE=unsure``) and a
   reviewer token; the published model serves.
2. Grey-and-dark versions (training/shifts.py) of the model's own **validation** images are sent
   to ``POST /predict/batch``; the unsure answers are captured for review.
3. A simulated reviewer pages through ``GET /review/items`` and labels up to ``--corrections``
   items with their true category through ``POST /review/items/{id}``.
4. ``python -m training.train --corrections s3://.../labels/`` fine-tunes the published model's
   float weights on the base training split plus the corrections (a share held out).
5. The candidate is published as a candidate and ``release.promote`` gates it against the
   published model: no worse on the clean test split (tolerance), better on the held-out
   corrections; latest moves in the demo's own model folder (the repository's is untouched).
6. Before and after, on grey-and-dark versions of the **test** split (never trained or chosen
   on) and on the clean test split.

``--pipeline`` (``make retrain-local``) runs steps 4-5 as the stack's retraining pipeline does
(``release/pipeline.py``, ``infra/components/retraining.py``), against a model bucket in the
local S3 holding the served model and the data set as ``make upload-data`` puts it: the check
(labels new to the served model) builds the SageMaker request, the job's entry point runs it
here in place of SageMaker (fine-tuning the served model from the bucket, publishing a candidate
and its record), the real gate judges it, and with ``--auto-promote`` the promotion record and
``latest`` are written (a deployed stack would first roll it out: UpdateStack, canary).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from classifier import contract
from classifier.core import sha256_hex

from scripts import local_server
from training import data as cifar
from training import shifts
from training.machine import describe

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "feedback-demo"
BATCH = 32  # images per POST /predict/batch (its limit)


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def splits(manifest: dict[str, Any], data: str) -> tuple[Any, ...]:
    recipe = manifest["recipe"]
    dataset, _ = cifar.load(data)
    _, _, x_val, y_val = cifar.split_validation(
        dataset.x_train, dataset.y_train, recipe["validation_fraction"], recipe["seed"]
    )
    return x_val, y_val, dataset.x_test, dataset.y_test


def send(url: str, images: list[bytes]) -> int:
    """Every image through POST /predict/batch; returns how many were answered unsure."""
    unsure = 0
    with httpx.Client(timeout=120) as client:
        for i in range(0, len(images), BATCH):
            files = [
                ("file", (f"{i + j}.png", b, "image/png"))
                for j, b in enumerate(images[i : i + BATCH])
            ]
            response = client.post(f"{url}/predict/batch", files=files)
            response.raise_for_status()
            unsure += sum(
                1
                for r in response.json()["results"]
                if r["prediction"]
                and (r["prediction"]["unsure"] or r["prediction"]["none_of_these"])
            )
    return unsure


def review(url: str, token: str, truth: dict[str, str], most: int) -> dict[str, int]:
    """A reviewer who knows each image's category labels up to ``most`` pending items."""
    headers = {"authorization": f"Bearer {token}"}
    counts = {"labelled": 0, "conflicts": 0}
    after = None
    with httpx.Client(timeout=60) as client:
        while counts["labelled"] < most:
            query = {"limit": 50, **({"after": after} if after else {})}
            page = client.get(f"{url}/review/items", params=query, headers=headers)
            page.raise_for_status()
            body = page.json()
            for item in body["items"]:
                if counts["labelled"] >= most:
                    break
                label = truth.get(item["sha256"]) if "sha256" in item else None
                label = label or truth[sha256_hex(client.get(item["image_url"]).content)]
                done = client.post(
                    f"{url}/review/items/{item['id']}", json={"label": label}, headers=headers
                )
                if done.status_code == 409:
                    counts["conflicts"] += 1
                    continue
                done.raise_for_status()
                counts["labelled"] += 1
            after = body["next"]
            if not after:
                break
    return counts


def evaluate(manifest: Path, x: np.ndarray, y: np.ndarray, tmp: Path) -> float:
    arrays = tmp / f"eval-{secrets.token_hex(4)}.npz"
    np.savez(arrays, x=x, y=y)
    out = tmp / f"{arrays.stem}.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "release.evaluate",
            str(manifest),
            "--arrays",
            str(arrays),
            "--json",
            str(out),
        ],
        check=True,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    return float(json.loads(out.read_text())["accuracy"])


def run(command: list[str], env: dict[str, str], *, check: bool = True) -> int:
    print("$ " + " ".join(command), flush=True)
    return subprocess.run(command, check=check, env=env, cwd=ROOT).returncode


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/feedback_demo.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"))
    parser.add_argument("--model", type=Path, default=local_server.REPO_MODEL)
    parser.add_argument("--corrections", type=int, default=1000, help="most items labelled")
    parser.add_argument("--send", type=int, default=5000, help="validation images sent")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    parser.add_argument("--seed", type=int, default=0, help="which validation images are sent")
    parser.add_argument(
        "--shift",
        default="grey_and_dark",
        choices=sorted(shifts.SHIFTS),
        help="what happened to the images people send (training/shifts.py)",
    )
    parser.add_argument("--limit", type=int, help="train on the first N images only (a smoke run)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--plot", type=Path, help="draw before and after here (a PNG)")
    parser.add_argument(
        "--pipeline", action="store_true", help="learn and gate as the retraining pipeline does"
    )
    parser.add_argument(
        "--auto-promote", action="store_true", help="with --pipeline: promote what passes"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a recipe field for the fine-tuning run (repeatable), e.g. corrections_repeat=4",
    )
    return parser.parse_args(argv)


def aws_env(endpoint: str) -> dict[str, str]:
    """This process's environment pointed at the local S3, for the servers and runs it starts."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",  # moto accepts any credentials
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)]),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def capture_and_review(
    args: argparse.Namespace, env: dict[str, str], images: list[bytes], truth: dict[str, str]
) -> tuple[int, dict[str, int]]:
    """The local API with capture on gets the shifted images; a simulated reviewer labels the
    captured ones through the review API. Returns how many were captured, and the counts."""
    token = secrets.token_urlsafe(24)
    saved = dict(os.environ)
    os.environ.update(env)
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    # One reviewer's session: the hourly bound a deployment keeps (capturePerHour) is lifted.
    os.environ.update(
        {
            "REVIEW_BUCKET": BUCKET,
            "CAPTURE": "unsure",
            "REVIEWER_TOKEN": token,
            "CAPTURE_PER_HOUR": str(len(images)),
        }
    )
    api_port = local_server.free_port()
    server = local_server.start(api_port, manifest=args.model, quiet=True)
    try:
        url = f"http://127.0.0.1:{api_port}"
        banner(f"capture: {len(images)} {args.shift} validation images to {url}/predict/batch")
        unsure = send(url, images)
        print(f"{unsure} answered unsure or none of these, and captured for review")
        banner("review: a simulated reviewer labels them through the review API")
        counts = review(url, token, truth, args.corrections)
        print(f"{counts['labelled']} labelled ({counts['conflicts']} conflicts)")
    finally:
        local_server.stop(server)
        os.environ.clear()
        os.environ.update(saved)
    return unsure, counts


def learn(
    args: argparse.Namespace, env: dict[str, str], published: dict[str, Any], work: Path
) -> tuple[str, Path, float]:
    """Fine-tune on the corrections and publish the candidate into the demo's own model folder
    (a copy of the served model's): the candidate, that folder, and the training minutes."""
    banner("learn: fine-tune on the base training split plus the corrections")
    models = work / "bucket"
    version = published["model_version"]
    shutil.copytree(args.model.parent.parent / version, models / "models" / version)
    (models / "models" / contract.LATEST).mkdir(parents=True)
    shutil.copy(args.model, models / "models" / contract.LATEST / contract.MANIFEST_NAME)
    runs = work / "runs"
    train_start = time.monotonic()
    command = [sys.executable, "-m", "training.train", "--data", args.data, "--out", str(runs)]
    command += ["--corrections", f"s3://{BUCKET}/{contract.LABELS_PREFIX}"]
    command += [
        "--epochs",
        str(args.epochs),
        "--init-from",
        str(args.model.parent.parent / version),
    ]
    command += ["--seed", str(published["recipe"]["seed"])]
    command += [*(["--limit", str(args.limit)] if args.limit else [])]
    run([*command, *[a for item in args.set for a in ("--set", item)]], env)
    train_minutes = (time.monotonic() - train_start) / 60
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    candidate = json.loads((run_dir / contract.MANIFEST_NAME).read_text())["model_version"]
    run([sys.executable, "-m", "release.publish", str(run_dir), str(models), "--candidate"], env)
    return candidate, models, train_minutes


def gate(args: argparse.Namespace, env: dict[str, str], candidate: str, models: Path) -> bool:
    """``make promote`` on the demo's model folder: True if the candidate became latest."""
    banner("gate and promote (the demo's model folder; the repository's models/ is untouched)")
    command = [sys.executable, "-m", "release.promote", candidate, "--bucket", str(models)]
    return run([*command, "--data", args.data, "--no-rollout"], env, check=False) == 0


def through_pipeline(
    args: argparse.Namespace, env: dict[str, str], published: dict[str, Any], work: Path
) -> tuple[str, Path, float, dict[str, Any]]:
    """Steps 4-5 as the retraining pipeline runs them: the candidate, a local folder holding it,
    the training minutes, and the pipeline's figures (check, gate, promotion)."""
    from release import cloud, pipeline
    from release import promote as promotion
    from release.publish import Destination

    banner("pipeline: the check, the job's request, the job here, the gate")
    models_bucket = f"{BUCKET}-models"
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=models_bucket)
        version = published["model_version"]
        for path in (args.model.parent.parent / version).iterdir():
            s3.upload_file(str(path), models_bucket, contract.model_key(version, path.name))
        latest = contract.model_key(contract.LATEST, contract.MANIFEST_NAME)
        s3.upload_file(str(args.model), models_bucket, latest)
        archive = cloud.data_archive(Path(args.data), work)  # as make upload-data does
        s3.upload_file(str(archive), models_bucket, contract.DATA_KEY)
        settings = pipeline.Settings(
            {
                "MODELS_BUCKET": models_bucket,
                "UPLOADS_BUCKET": BUCKET,
                "TRAINING_ROLE_ARN": "arn:aws:iam::000000000000:role/local",
                "TRAINING_SOURCE_URI": "file://" + str(ROOT),
            }
        )
        check = pipeline.check({"minLabels": 1}, settings)
        print(json.dumps({k: check[k] for k in ("served", "labels", "enough")}))
        if not check["enough"]:
            raise SystemExit(check["message"])
        # The job's hyperparameters, as SageMaker hands them to the entry point.
        passed = {
            k: json.loads(v)
            for k, v in check["request"]["HyperParameters"].items()
            if not k.startswith("sagemaker_")
        }
        passed["epochs"] = str(args.epochs)
        passed["seed"] = str(published["recipe"]["seed"])
        if args.limit:
            passed["limit"] = str(args.limit)
        command = [sys.executable, "training/sagemaker_entry.py"]
        command += [a for k, v in passed.items() for a in (f"--{k}", str(v))]
        command += [a for item in args.set for a in ("--set", item)]
        job_env = {
            **env,
            "SM_CHANNEL_TRAINING": str(Path(args.data).resolve()),
            "SM_MODEL_DIR": str(work / "sm-model"),
            "SM_OUTPUT_DATA_DIR": str(work / "sm-output"),
        }
        train_start = time.monotonic()
        run(command, job_env)
        train_minutes = (time.monotonic() - train_start) / 60
        gated = pipeline.gate({"job": check["job"], "served": version}, settings, work / "gate")
        print(gated["message"])
        figures: dict[str, Any] = {"check": check["labels"], "gate": gated, "job": check["job"]}
        if gated["accepted"] and args.auto_promote:
            event = {"candidate": gated["candidate"], "served": version, **gated}
            figures["promotion"] = pipeline.promote(event, settings)
            print(figures["promotion"]["message"])
        candidate = gated["candidate"]
        folder = work / "bucket" / "models"
        promotion.fetch(Destination(f"s3://{models_bucket}"), candidate, folder)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return candidate, work / "bucket", train_minutes, figures


def before_and_after(
    args: argparse.Namespace,
    after_manifest: Path,
    x_test: np.ndarray,
    y_test: np.ndarray,
    work: Path,
) -> dict[str, Any]:
    """Accuracy of the served model and the candidate on shifted and clean test images."""
    banner("before and after, on images never trained or chosen on")
    figures: dict[str, Any] = {}
    for name, (x, y) in {
        f"{args.shift}_test": (shifts.SHIFTS[args.shift](x_test), y_test),
        "clean_test": (x_test, y_test),
    }.items():
        before = evaluate(args.model, x, y, work)
        after = evaluate(after_manifest, x, y, work)
        change = 100 * (after - before)
        figures[name] = {"before": before, "after": after, "change_points": round(change, 2)}
        print(f"{name:<20} before {before:.2%}  after {after:.2%}  ({change:+.2f} points)")
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = options(argv)
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the local S3's access log
    start = time.monotonic()
    published = json.loads(args.model.read_text())
    x_val, y_val, x_test, y_test = splits(published, args.data)
    names = published["class_names"]
    chosen = np.random.default_rng(args.seed).permutation(len(y_val))[: args.send]
    images = shifts.as_png(shifts.SHIFTS[args.shift](x_val[chosen]))
    truth = {sha256_hex(b): names[int(label)] for b, label in zip(images, y_val[chosen])}
    work = Path(tempfile.mkdtemp(prefix="feedback-demo-"))
    s3_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3_server.start()
    host, port = s3_server.get_host_and_port()
    env = aws_env(f"http://{host}:{port}")
    unsure, counts = capture_and_review(args, env, images, truth)
    through: dict[str, Any] = {}
    if args.pipeline:
        candidate, models, train_minutes, through = through_pipeline(args, env, published, work)
        promoted = "promotion" in through
    else:
        candidate, models, train_minutes = learn(args, env, published, work)
        promoted = gate(args, env, candidate, models)
    after_manifest = models / "models" / candidate / contract.MANIFEST_NAME
    chosen_on = json.loads(after_manifest.read_text())["metrics"]
    figures = {
        "machine": describe(),
        "shift": args.shift,
        "seed": published["recipe"]["seed"],
        "sent": len(images),
        "captured": unsure,
        "labelled": counts["labelled"],
        "before_model": published["model_version"],
        "after_model": candidate,
        "fine_tune_epochs": args.epochs,
        "recipe_overrides": args.set,
        "train_minutes": round(train_minutes, 1),
        "promoted": promoted,
        # What settings are chosen on: never the test split.
        "validation": {
            k: chosen_on.get(k)
            for k in ("validation_accuracy", "held_out_corrections_accuracy")
            if k in chosen_on
        },
        **({"pipeline": through} if through else {}),
        **before_and_after(args, after_manifest, x_test, y_test, work),
        "minutes": round((time.monotonic() - start) / 60, 1),
    }
    print(
        f"done in {figures['minutes']} min (training {train_minutes:.1f} min); {work} holds it all"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.plot:
        from training.plots import before_after

        before_after(figures, args.plot)
    s3_server.stop()
    return figures


if __name__ == "__main__":
    main()
