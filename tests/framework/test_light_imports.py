"""``import spmm``, ``spmm --help``, ``spmm COMMAND --help`` and argument errors import none of the
heavy libraries (each checked in a fresh process), while the public API behaves as an eager import."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.conftest import REPO_ROOT

HEAVY = ("torch", "transformers", "captum", "matplotlib", "gradio", "timm", "torchvision", "ray")

RUN_CLI = """
import contextlib, io, json, sys
from spmm.cli import main
heavy = json.loads(sys.argv[2])
results = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
    results.append({"argv": argv, "code": code, "heavy": loaded})
print(json.dumps({"results": results}))
"""
"""Runs the calls one after another in one process and lists the heavy libraries loaded after each
(a library, once imported, stays in sys.modules: the first call that lists it imported it)."""


def _run(code: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "stderr": result.stderr}


CLI_CALLS = [
    (["--help"], 0),
    (["explain", "--help"], 0),
    (["compare", "--help"], 0),
    (["counterfactual", "--help"], 0),
    (["bench", "faithfulness", "--help"], 0),
    (["bench", "groundtruth", "--help"], 0),
    (["attribute", "--help"], 0),
    (["serve", "--help"], 0),
    (["demo", "--help"], 0),
    (["methods", "--help"], 0),
    (["explain", "--no-such-option", "x"], 2),
    (["explain"], 2),
    (["explain", "--seed", "one", "a film"], 2),
    (["no-such-command"], 2),
]


def test_help_and_argument_errors_import_no_heavy_library():
    results = _run(RUN_CLI, json.dumps([argv for argv, _ in CLI_CALLS]), json.dumps(HEAVY))["results"]
    assert [(r["argv"], r["code"]) for r in results] == [(argv, code) for argv, code in CLI_CALLS]
    assert [r for r in results if r["heavy"]] == []


def test_import_spmm_alone_imports_no_heavy_library():
    result = _run("import json, sys, spmm; print(json.dumps({'modules': sorted(sys.modules)}))")
    assert not set(HEAVY) & {m.split(".")[0] for m in result["modules"]}


def test_public_names_are_the_objects_of_their_defining_modules():
    """``spmm.X`` and ``from spmm import X`` give the object its module defines, in any order of
    first use, even after the same-named submodule (spmm.load, spmm.explain, spmm.audit) was imported."""
    code = """
import importlib, json, sys
import spmm.load, spmm.explain, spmm.audit   # the submodules first: the names must still be the functions
import spmm
wrong = []
for name in spmm.__all__:
    value = getattr(spmm, name)
    defining = importlib.import_module(value.__module__)
    if getattr(defining, name) is not value or isinstance(value, type(sys)):
        wrong.append(name)
from spmm import load, explain, audit, RuleSet
wrong += [n for n, v in {"load": load, "explain": explain, "audit": audit}.items() if not callable(v)]
missing = sorted(set(spmm.__all__) - set(dir(spmm)))
print(json.dumps({"wrong": wrong, "missing": missing, "methods": len(spmm.list_methods())}))
"""
    result = _run(code)
    assert result["wrong"] == [] and result["missing"] == []
    assert result["methods"] > 0


def test_the_method_registry_is_complete_without_the_public_api():
    """Importing the registry module alone (as the CLI does) lists every method the source registers."""
    registered = {match for path in (REPO_ROOT / "spmm" / "methods").glob("*.py")
                  for match in re.findall(r'@register_method\(\s*"(\w+)"', path.read_text())}
    code = "import json; from spmm.methods.registry import list_methods; print(json.dumps({'alone': list_methods()}))"
    assert set(_run(code)["alone"]) == registered and "soft_pullback" in registered


def test_python_m_spmm_cli_help_imports_no_torch():
    """The issue's own check: ``python -X importtime -m spmm.cli --help`` lists no torch import."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "spmm.cli", "--help"], capture_output=True,
                            text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0 and "usage: spmm" in result.stdout, result.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "spmm.cli" in imported and not [name for name in imported if name.split(".")[0] in HEAVY]


CONCURRENT_FIRST_USE = """
import json, threading
import spmm
start, found, failed = threading.Barrier(8), [], []
def use(name):
    start.wait()
    try:
        found.append(getattr(spmm, name).__name__)
    except AttributeError as error:
        failed.append(str(error))
names = ["load", "list_methods", "explain", "audit", "RuleSet", "load", "list_methods", "Explanation"]
threads = [threading.Thread(target=use, args=(name,)) for name in names]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"found": sorted(found), "failed": failed}))
"""


def test_threads_using_the_public_api_at_once_all_get_their_names():
    """The first use of ``spmm.X`` imports the API once; threads asking meanwhile wait for it (the web
    page's warm-up thread and a request did race: 'module spmm has no attribute load')."""
    for _ in range(3):
        result = _run(CONCURRENT_FIRST_USE)
        assert result["failed"] == [] and len(result["found"]) == 8


def test_a_missing_input_file_is_a_one_line_error_before_any_heavy_import(tmp_path):
    """``spmm explain missing.wav`` (and compare, counterfactual, the audio alias) answers rc 2 with one
    line naming the file, and has imported no torch when it does."""
    missing = [str(tmp_path / name) for name in ("missing.wav", "missing.png", "missing.jpg", "no-such.flac")]
    calls = [["explain", missing[0]], ["compare", missing[1]], ["counterfactual", missing[2]],
             ["explain-audio", missing[3]], ["explain", "kws-res8", missing[0]]]
    results = _run(RUN_CLI, json.dumps(calls), json.dumps(HEAVY))["results"]
    assert [(r["argv"], r["code"], r["heavy"]) for r in results] == [(argv, 2, []) for argv in calls]
    result = subprocess.run([sys.executable, "-m", "spmm.cli", "explain", missing[0]], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == f"spmm explain: error: input file not found: {missing[0]}"
