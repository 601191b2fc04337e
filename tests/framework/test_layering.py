"""Layers: core ``spmm/`` ← ``modalities/`` ← ``adapters/`` ← ``cli/``.  No folder imports a layer
above it, none imports another layer's private (``_name``) modules or names, and the core imports
nothing from the outer rings even at run time.

``spmm.adapters``/``spmm.modalities``/``spmm.cli`` are installed from the folders ``adapters/``,
``modalities/`` and ``cli/`` (setuptools package-dir mapping), which static tools cannot see; this
test reads the import statements itself and also imports every core module in a fresh process.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

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


# -- every folder: core ← modalities ← adapters ← cli -------------------------------------------
LAYERS = {"spmm": 0, "modalities": 1, "adapters": 2, "cli": 3, "examples": 4, "benchmarks": 4}
"""Folder -> its layer; a folder may import its own layer and the ones below (examples and benchmark
scripts use the public API of every layer)."""
INSTALLED_AS = {"spmm.modalities": "modalities", "spmm.adapters": "adapters", "spmm.cli": "cli"}


def layer_of(module: str) -> str | None:
    """The folder an imported ``spmm…`` module lives in (None for other packages)."""
    for package, folder in INSTALLED_AS.items():
        if module == package or module.startswith(package + "."):
            return folder
    return "spmm" if module == "spmm" or module.startswith("spmm.") else None


def _imports_with_names(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every absolute import of ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def layering_violations(folder: str, paths: list[Path]) -> list[str]:
    """Imports of ``paths`` (files of ``folder``) that reach a layer above, or a private name or
    module (``_name``) of another layer."""
    problems = []
    for path in paths:
        for module, names in _imports_with_names(path):
            layer = layer_of(module)
            if layer is None:
                continue
            where = f"{path.name}: {module}"
            if LAYERS[layer] > LAYERS[folder]:
                problems.append(f"{where} (a layer above {folder})")
            if layer != folder:
                private = [n for n in module.split(".") + names if n.startswith("_") and not n.startswith("__")]
                if private:
                    problems.append(f"{where} imports private {', '.join(private)} of {layer}")
    return problems


@pytest.mark.parametrize("folder", list(LAYERS))
def test_every_folder_imports_only_its_layer_and_the_public_names_below(folder):
    paths = sorted((REPO_ROOT / folder).rglob("*.py"))
    assert paths
    assert layering_violations(folder, paths) == []


def test_the_layer_check_catches_upward_and_private_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from spmm.adapters.audio.pipelines import AudioPipeline\nfrom spmm.explanation import _in_notebook\n"
                      "import spmm.cli\nfrom spmm.modalities.text import words\nfrom spmm.modalities._x import y\n")
    problems = layering_violations("modalities", [sample])  # its own layer's private names are its own
    assert len(problems) == 3 and "spmm.modalities" not in " ".join(problems)
    assert any("_in_notebook" in p for p in problems) and any("spmm.cli" in p for p in problems)
    assert len(layering_violations("cli", [sample])) == 2  # the CLI may import every layer, but no private names
