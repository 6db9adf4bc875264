"""The contract is where the road's facts live: the routes the stack wires are the app's, and no
other module spells a key prefix of the buckets' layout."""

from __future__ import annotations

import ast
from pathlib import Path

from classifier import contract

from tests.conftest import ROOT

PREFIXES = (
    contract.MODELS_PREFIX,
    contract.RESULTS_PREFIX,
    contract.REVIEW_PREFIX,
    contract.LABELS_PREFIX,
    contract.DATA_PREFIX,
    contract.UPLOADS_PREFIX,
)
CODE = ("functions", "training", "release", "infra", "scripts")


def test_the_stack_wires_exactly_the_apps_routes() -> None:
    from classifier.api import http_routes

    assert sorted(contract.ROUTES) == sorted((method, path) for path, method, _ in http_routes())


def key_literals(path: Path) -> list[tuple[int, str]]:
    """String constants in code (docstrings aside) that begin with a bucket key prefix."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and node.value.startswith(PREFIXES)
    ]


def test_no_key_prefix_is_spelt_outside_the_contract() -> None:
    found = {
        f"{path.relative_to(ROOT)}:{line}": value
        for folder in CODE
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "cdk.out" not in path.parts and path.name != "contract.py"
        for line, value in key_literals(path)
    }
    assert found == {}
