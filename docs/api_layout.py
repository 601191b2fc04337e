"""MkDocs hook: give mkdocstrings the installed package layout.

spmm installs ``adapters/``, ``modalities/`` and ``cli/`` as ``spmm.adapters``, ``spmm.modalities``
and ``spmm.cli`` (pyproject's package-dir), which a static reader of the source tree cannot see.
When MkDocs loads this hook it writes ``build/api-layout/spmm``: links to every entry of ``spmm/``
plus the three outer folders under their installed names.  mkdocs.yml points mkdocstrings there;
nothing is imported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = ROOT / "build" / "api-layout"
OUTER_RINGS = {"adapters": "adapters", "modalities": "modalities", "cli": "cli"}


def _links() -> dict[str, Path]:
    links = {entry.name: entry for entry in (ROOT / "spmm").iterdir() if entry.name != "__pycache__"}
    links.update({name: ROOT / folder for name, folder in OUTER_RINGS.items()})
    return links


def _up_to_date(links: dict[str, Path]) -> bool:
    package = LAYOUT / "spmm"
    return package.is_dir() and {p.name: p.resolve() for p in package.iterdir()} == {
        name: target.resolve() for name, target in links.items()
    }


def write_layout() -> Path:
    """Create (or refresh) ``build/api-layout``; returns it."""
    links = _links()
    if _up_to_date(links):
        return LAYOUT
    LAYOUT.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="api-layout-", dir=LAYOUT.parent))
    for name, target in links.items():
        (staging / "spmm").mkdir(exist_ok=True)
        (staging / "spmm" / name).symlink_to(target)
    shutil.rmtree(LAYOUT, ignore_errors=True)
    try:
        os.replace(staging, LAYOUT)
    except OSError:  # another build wrote it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return LAYOUT


write_layout()
