"""The README keeps its promises about commands: every `make` target it names exists and `make
help` lists it; every local link points at a file that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_make_target_the_docs_name_is_listed_by_make_help() -> None:
    docs = README + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    named = set(re.findall(r"(?:`|^)make ([a-z][a-z0-9-]*)", docs, flags=re.MULTILINE))
    listed = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    helped = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {"demo", "test"} <= named
    assert named <= helped, f"named in the docs but not in `make help`: {named - helped}"


def test_local_links_in_the_readme_point_at_files() -> None:
    links = re.findall(r"\]\(((?:docs|events|models|infra|functions)/[^)#]+)", README)
    assert links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing


def test_links_between_the_docs_pages_point_at_files() -> None:
    missing = []
    for page in (ROOT / "docs").glob("*.md"):
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / link).exists():
                missing.append(f"{page.name}: {link}")
    assert not missing, missing


def slugs(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as -."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_to_a_section_name_a_heading_of_that_page() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    broken = []
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#:]*\.md|)#([^)]+)\)", page.read_text()):
            linked = (page.parent / target) if target else page
            if linked.is_file() and anchor not in slugs(linked.read_text()):
                broken.append(f"{page.name}: {target}#{anchor}")
    assert not broken, broken


def test_the_readme_fits_a_first_screen_with_the_two_commands_on_top() -> None:
    assert len(README) <= 15_000
    top = "\n".join(README.splitlines()[:30])
    assert "make demo" in top and "make test" in top


def test_the_readmes_api_table_lists_exactly_the_apps_routes() -> None:
    from classifier.api import http_routes

    table = set(re.findall(r"^\| `([A-Z]+ /[^`]*)`", README, flags=re.MULTILINE))
    table |= set(re.findall(r", `([A-Z]+ /[^`]*)`", README))
    assert table == {f"{method} {path}" for path, method, _ in http_routes()}


def test_nothing_in_functions_or_infra_names_a_cifar_10_class() -> None:
    """Labels come from the model's manifest: the serving code and the stack work for any."""
    from training.data import CIFAR10_CLASSES

    sources = [
        p
        for folder in ("functions/classifier", "infra")
        for p in (ROOT / folder).rglob("*")
        if p.suffix in (".py", ".html") and "cdk.out" not in p.parts
    ]
    pattern = re.compile(r"\b(" + "|".join(CIFAR10_CLASSES) + r")\b", re.IGNORECASE)
    named = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in sources
        for m in pattern.finditer(p.read_text())
    ]
    assert not named, named[:10]


def documented_commands() -> set[tuple[str, ...]]:
    """Every `python -m scripts.x` and `python -m training.x` the README and docs/ show."""
    found = set()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in re.finditer(
            r"python (-m [a-z_.]+|(?:scripts|research)/[a-z_/]+\.py)", page.read_text()
        ):
            found.add(tuple(match.group(1).split()))
    return found


def test_every_documented_training_and_measuring_command_answers_help() -> None:
    import sys

    from tests.conftest import subprocess_env

    commands = documented_commands()
    assert ("-m", "training.train") in commands and ("-m", "research.ablate") in commands
    for command in sorted(commands):
        done = subprocess.run(
            [sys.executable, *command, "--help"],
            cwd=ROOT,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"python {' '.join(command)} --help: {done.stderr[-800:]}"
        assert "usage" in done.stdout.lower(), command


@pytest.mark.slow
def test_the_documented_ablation_runs_for_real_on_a_tiny_set(
    synthetic_data: dict[str, object], tmp_path: Path
) -> None:
    import json

    from tests.conftest import run_on_synthetic

    out = tmp_path / "ablations.jsonl"
    runs = ("baseline", "widths=8,16,16,lookahead_every=0")
    options = ("--limit", "200", "--epochs", "1", "--out", str(out))
    run_on_synthetic("research.ablate", synthetic_data, tmp_path, *options, *runs)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["run"] for r in rows] == ["baseline", "widths=8,16,16,lookahead_every=0"]
    assert all(0 <= r["val_mirror-translate"] <= 1 for r in rows)
