"""LXT's import on current transformers: ``lxt.efficient`` raising ImportError (not only
ModuleNotFoundError) falls back to its rule functions; if those fail too, one line names the versions."""

from __future__ import annotations

import sys

import pytest

from spmm.errors import SpmmInputError

BROKEN_INIT = "raise ImportError(\"cannot import name 'AttentionMaskConverter' from 'transformers'\")\n"


@pytest.fixture
def fake_lxt(tmp_path, monkeypatch):
    """A stand-in lxt 2.1.0 whose ``lxt.efficient/__init__`` raises ImportError as LXT 2.1 does on
    transformers 5; returns a function writing its ``patches`` module."""
    package = tmp_path / "lxt"
    (package / "efficient").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "efficient" / "__init__.py").write_text(BROKEN_INIT)
    info = tmp_path / "lxt-2.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lxt\nVersion: 2.1.0\n")
    names = ("lxt", "lxt.efficient", "lxt.efficient.patches")
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield lambda source: (package / "efficient" / "patches.py").write_text(source)
    for name in names:
        sys.modules.pop(name, None)


def test_an_import_error_of_lxt_efficient_falls_back_to_its_rule_functions(fake_lxt):
    from spmm.adapters.peers.lxt_rules import lxt_patches

    fake_lxt("RULES = 'lxt rule functions'\n")
    assert lxt_patches().RULES == "lxt rule functions"


def test_rule_functions_that_cannot_be_imported_give_one_line_naming_the_versions(fake_lxt):
    import transformers

    from spmm.adapters.peers.lxt_rules import lxt_patches

    fake_lxt("from transformers import no_such_name\n")
    expected = f"lxt 2.1.0 does not support transformers {transformers.__version__}"
    with pytest.raises(SpmmInputError, match=expected) as error:
        lxt_patches()
    assert "\n" not in str(error.value) and "no_such_name" in str(error.value)
    assert "lxt.efficient" not in sys.modules  # the stand-in package is not left behind
