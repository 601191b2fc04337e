"""The core (``spmm/``) imports nothing from the outer rings: adapters, modalities, the CLI.

``spmm.adapters``/``spmm.modalities``/``spmm.cli`` are installed from the folders ``adapters/``,
``modalities/`` and ``cli/`` (setuptools package-dir mapping), which static tools cannot see; this
test reads the import statements itself and also imports every core module in a fresh process.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

OUTER = ("spmm.adapters", "spmm.modalities", "spmm.cli")
CORE = REPO_ROOT / "spmm"


def _imported_modules(path: Path) -> list[str]:
    """Absolute names of every module ``path`` imports (``from spmm import adapters`` counts as
    ``spmm.adapters``); relative imports stay inside the core folder."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _core_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in CORE.rglob("*.py")
    )


def test_no_core_file_imports_an_outer_ring():
    offending = {
        str(path.relative_to(REPO_ROOT)): [n for n in _imported_modules(path) if n.startswith(OUTER)]
        for path in CORE.rglob("*.py")
    }
    assert {file: names for file, names in offending.items() if names} == {}


def test_the_static_check_sees_the_import_forms_it_must_catch(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import spmm.cli\nfrom spmm import adapters\nfrom spmm.modalities.image import load_images\n"
                      "def f():\n    from spmm.adapters.vision import load_model\n")
    found = [n for n in _imported_modules(sample) if n.startswith(OUTER)]
    assert set(found) >= {"spmm.cli", "spmm.adapters", "spmm.modalities.image", "spmm.adapters.vision"}


def test_importing_every_core_module_loads_no_outer_ring():
    modules = _core_modules()
    assert "spmm.bench.runner" in modules and "spmm.load" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({OUTER!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert result.stdout.strip() == "[]", result.stdout
