"""Classify every object under a prefix of the uploads bucket with the bulk state machine.

    python -m scripts.classify_bucket s3://<UploadsBucket>/<prefix> [--stack Cifar10Classifier]
                                      [--state-machine ARN] [--wait]

Finds the state machine and the uploads bucket in the stack's outputs (BulkStateMachine,
UploadsBucket), starts an execution with {"prefix": ...} and prints its ARN; --wait polls it to the
end. Results land under results/<key>.json like any upload; the run report under bulk-reports/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from classifier import contract

from release.cloud import stack_outputs


def start(source: str, *, state_machine: str, uploads_bucket: str | None) -> dict[str, Any]:
    """Start one execution for ``source`` (s3://bucket/prefix); returns its ARN and input."""
    import boto3

    if not source.startswith("s3://"):
        raise SystemExit(f"error: {source!r} is not s3://bucket/prefix")
    bucket, _, prefix = source[len("s3://") :].partition("/")
    if uploads_bucket and bucket != uploads_bucket:
        raise SystemExit(
            f"error: the bulk classifier reads its stack's uploads bucket ({uploads_bucket}), "
            f"not {bucket}: copy the images there first (aws s3 sync)"
        )
    payload = {"prefix": prefix}
    started = boto3.client("stepfunctions").start_execution(
        stateMachineArn=state_machine, input=json.dumps(payload)
    )
    return {"executionArn": started["executionArn"], "input": payload}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/classify_bucket.py", description=__doc__)
    parser.add_argument("source", help="s3://<UploadsBucket>/<prefix>")
    parser.add_argument("--stack", default=os.environ.get("STACK", contract.STACK_NAME))
    parser.add_argument("--state-machine", help="its ARN (default: the stack's output)")
    parser.add_argument("--wait", action="store_true", help="poll until the run ends")
    args = parser.parse_args(argv)
    uploads_bucket = None
    machine = args.state_machine
    if not machine:
        outputs = stack_outputs(args.stack)
        machine, uploads_bucket = outputs["BulkStateMachine"], outputs["UploadsBucket"]
    run = start(args.source, state_machine=machine, uploads_bucket=uploads_bucket)
    print(f"started {run['executionArn']} for prefix {run['input']['prefix']!r}")
    if args.wait:
        import boto3

        client = boto3.client("stepfunctions")
        while (
            status := client.describe_execution(executionArn=run["executionArn"])["status"]
        ) == "RUNNING":
            time.sleep(10)
        print(f"finished: {status}")
        return 0 if status == "SUCCEEDED" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
