"""Shared fixtures: seeded RNG, single-threaded torch, and the real data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout, or $SPMM_SHARED_DATA."""
    return Path(os.environ.get("SPMM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real data folder; tests using it skip with a reason when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set SPMM_SHARED_DATA to use another)")
    return path


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
