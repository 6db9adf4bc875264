"""infra/ stands on the contract alone: no training or release module, not the FastAPI app, no
serving runtime, so `make synth` installs only the infra extra (its Makefile line says so)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

# What the serving code needs and the stack only bundles (pip installs it for the Lambda's
# platform into the asset): never imported by the CDK app.
SERVING_RUNTIME = {"numpy", "PIL", "pydantic", "fastapi", "starlette", "mangum", "ai_edge_litert"}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_infra_imports_the_contract_and_its_own_modules_only() -> None:
    for path in sorted((ROOT / "infra").rglob("*.py")):
        if "cdk.out" in path.parts:
            continue
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top not in {"training", "release", "scripts"}, (path, name)
            assert top not in SERVING_RUNTIME, (path, name)
            if top == "classifier":
                assert name in ("classifier", "classifier.contract") or name.startswith(
                    "classifier.contract."
                ), (path, name)


def test_make_synth_installs_the_infra_extra_alone() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^EXTRAS_infra := infra$", makefile, flags=re.MULTILINE)
