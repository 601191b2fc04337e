"""The decoder bench's Soft Pullback scores run under the text rule set of the Llama they explain
(its RMS norms and gated MLPs found in the ``NextTokenLogits`` module that wraps it), not under the op
rules alone."""

from __future__ import annotations

import pytest
import torch

import spmm
from spmm.adapters.peers.decoders import NextTokenLogits

transformers = pytest.importorskip("transformers")


def test_decoder_soft_pullback_scores_use_the_llama_module_rules():
    from spmm.adapters.peers.decoders import random_llama, token_scores

    model = random_llama(64, 0, 32, 1)
    ids = torch.tensor([5, 17, 9, 30, 12])
    (scores,) = token_scores("soft_pullback", model, None, ids, 1)
    prefix = model.get_input_embeddings()(ids[:-1].view(1, -1)).detach()
    wrapped = NextTokenLogits(model).eval()
    expected = spmm.explain(wrapped, prefix, ids[-1:], rules="text").attributions
    torch.testing.assert_close(scores, (expected * prefix).sum(-1)[0])
    ops_only = spmm.explain(lambda x: wrapped(x), prefix, ids[-1:]).attributions  # RMS norms with exact gradients
    assert ((ops_only * prefix).sum(-1)[0] - scores).norm() > 1e-4 * scores.norm()
