"""Long methods report their loops only where a caller installs a reporter."""

from __future__ import annotations

import threading

import torch

import spmm
from spmm.progress import reporting


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).eval()


def test_ascent_and_fusion_loops_are_reported_inside_the_block_only():
    seen = []

    def reporter(iterable, description, total):
        seen.append((description, total))
        return iterable

    x = torch.rand(2, 4)
    with reporting(reporter):
        spmm.explain(_model(), x, 1, "pullback_ascent", steps=3)
        spmm.explain(_model(), x, 1, "fusiongrad", model_samples=2, input_samples=1, seed=0)
    spmm.explain(_model(), x, 1, "pullback_ascent", steps=3)
    assert seen == [("ascent steps", 3), ("model samples", 2)]


def test_other_threads_do_not_see_the_reporter():
    seen = []
    with reporting(lambda iterable, description, total: seen.append(description) or iterable):
        thread = threading.Thread(target=spmm.explain, args=(_model(), torch.rand(1, 4), 0, "pullback_ascent"))
        thread.start()
        thread.join()
    assert seen == []
