"""The shipped causal LM (``spmm.load("tiny-lm")``, trained by examples/train_tiny_lm.py): it loads,
generates, explains its generations end to end and predicts held-out text better than unigram frequencies."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch

import spmm
from spmm.adapters.hf.generation import tiny_lm_folder
from spmm.modalities.text.datasets import read_sst2

pytestmark = pytest.mark.skipif(not (tiny_lm_folder() / "config.json").is_file(),
                                reason="the tiny LM is not shipped in this checkout (examples/train_tiny_lm.py)")
HELD_OUT_SENTENCES = 150


def test_shipped_folder_is_small_and_documents_its_training():
    folder = tiny_lm_folder()
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 20 * 2**20
    report = json.loads((folder / "training.json").read_text())
    assert report["held_out_perplexity"] < report["unigram_perplexity"]


def test_loads_generates_and_explains_end_to_end(tmp_path):
    m = spmm.load("tiny-lm")
    assert m.name == "tiny-lm" and type(m.lm).__name__ == "LlamaForCausalLM"
    ex = m.explain("the movie was", target=spmm.Continuation(max_new_tokens=5), seed=0)
    assert len(ex.row_tokens) == 5 and ex.continuation.strip()
    assert ex.context_tokens[0] == m.tokenizer.bos_token  # the BOS column, held fixed
    assert torch.all(ex.matrix[:, 0] == 0)
    defined = ~torch.isnan(ex.matrix)
    assert torch.isfinite(ex.matrix[defined]).all() and ex.matrix[defined].abs().sum() > 0
    assert ex.save(tmp_path / "lm.html").read_text().count("<tr>") == 6
    words = ex.aggregate("words")
    assert words.context_tokens[:3] == ["the", "movie", "was"]
    assert m.explain("the movie was").predictions[0][0].label.strip()


@pytest.mark.slow  # scores every held-out sentence: left out of the quick run (pytest -m 'not slow')
def test_held_out_perplexity_beats_unigram_frequencies(shared_data):
    """Perplexity of the LM on SST-2 dev sentences (each as BOS text EOS) against add-one-smoothed
    unigram frequencies of SST-2 train under the same tokenizer, on the same target tokens."""
    m = spmm.load("tiny-lm")
    tokenizer, lm = m.tokenizer, m.lm
    train, _ = read_sst2(shared_data / "text" / "sst2" / "stsa.binary.train")
    dev, _ = read_sst2(shared_data / "text" / "sst2" / "stsa.binary.dev")
    counts = Counter(i for text in train for i in tokenizer(text)["input_ids"][1:] + [tokenizer.eos_token_id])
    total, vocab = sum(counts.values()), len(tokenizer)
    lm_nll = unigram_nll = 0.0
    targets = 0
    for text in dev[:HELD_OUT_SENTENCES]:
        ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logp = lm(input_ids=torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        lm_nll -= float(logp.gather(1, torch.tensor(ids[1:]).view(-1, 1)).sum())
        unigram_nll -= sum(math.log((counts[i] + 1) / (total + vocab)) for i in ids[1:])
        targets += len(ids) - 1
    lm_ppl, unigram_ppl = math.exp(lm_nll / targets), math.exp(unigram_nll / targets)
    assert lm_ppl < 0.8 * unigram_ppl, (lm_ppl, unigram_ppl)
