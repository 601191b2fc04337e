"""The documentation: the MkDocs site builds with warnings as errors (broken links, missing pages,
API entries mkdocstrings cannot find), and the README's links stay inside the repository."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None,
    reason="needs the docs extra: pip install -c constraints.txt -e '.[docs]'",
)
def test_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for page in ("index.html", "getting-started/index.html", "concepts/index.html", "image/index.html",
                 "text/index.html", "audio/index.html", "crossmodal/index.html", "extending/index.html",
                 "api/index.html", "benchmarks/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("spmm.load.load", "spmm.explain.explain", "ImageExplanation", "RuleSet"):
        assert name in api, f"the API reference lacks {name}"


def _links(markdown: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", markdown)


def test_readme_links_stay_in_the_repository_and_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = _links(readme)
    assert links, "the README has no links"
    for link in links:
        assert "://" not in link and not link.startswith("/"), f"README links outside the repository: {link}"
        target = (ROOT / link.split("#")[0]).resolve()
        assert target.is_relative_to(ROOT), f"README links outside the repository: {link}"
        assert target.exists(), f"README links to a missing file: {link}"


def test_readme_is_a_guide_not_a_reference():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 220


def test_ci_runs_the_readme_test_command():
    """.ci/run installs and tests exactly as the README's test command says."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"^python3 -m venv \.venv && \. \.venv/bin/activate && (pip install [^\n]*?) && (python -m pytest)$",
                        readme, re.MULTILINE)
    assert command is not None, "the README has no test command"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command.group(1) in ci and command.group(2) in ci
