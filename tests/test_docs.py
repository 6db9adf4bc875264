"""The README keeps its promises about commands: every `make` target it names exists and `make
help` lists it; every local link points at a file that exists."""

from __future__ import annotations

import re
import subprocess

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
