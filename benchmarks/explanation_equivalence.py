"""Explanations of the shipped models, saved so that two checkouts can be compared.

Run it with each checkout's interpreter on the same machine, then compare:

    /work/main/.venv/bin/python benchmarks/explanation_equivalence.py save main.pt
    .venv/bin/python benchmarks/explanation_equivalence.py save branch.pt
    .venv/bin/python benchmarks/explanation_equivalence.py compare main.pt branch.pt

Covers every path of ``Explainable.explain`` a task or modality changes: generation (shared and
batched rows, logits and log-probabilities, a sequence log-probability, the next token), text
classification, both sides of a dual encoder (a label, a free text target) and an audio model with
targets in its own terms (CREPE frequencies).  Uses the public API only.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from PIL import Image

import spmm


def explanations() -> dict[str, torch.Tensor]:
    """Name -> attributions (or the generation matrix) and the explained scores."""
    torch.manual_seed(0)
    found: dict[str, torch.Tensor] = {}

    def keep(name: str, explanation: spmm.Explanation) -> None:
        found[f"{name}/attributions"] = explanation.attributions.detach().cpu().double()
        found[f"{name}/scores"] = explanation.scores.detach().cpu().double()
        row_scores = getattr(explanation, "row_scores", None)
        if row_scores is not None:
            found[f"{name}/row_scores"] = row_scores.detach().cpu().double()

    lm = spmm.load("tiny-lm")
    prompt = "the movie was"
    keep("tiny-lm/continuation/soft_pullback", lm.explain(prompt, spmm.Continuation(max_new_tokens=4), seed=0))
    keep("tiny-lm/continuation/gradient/logprob",
         lm.explain(prompt, spmm.Continuation(" very good", score="logprob"), "gradient"))
    keep("tiny-lm/continuation/batched", lm.explain(prompt, spmm.Continuation(" very good"), strategy="batched",
                                                     rows_per_pass=2))
    keep("tiny-lm/continuation/integrated_pullbacks",
         lm.explain(prompt, spmm.Continuation(" very good"), "integrated_pullbacks", steps=3))
    keep("tiny-lm/continuation/smooth_pullback",
         lm.explain(prompt, spmm.Continuation(" good"), "smooth_pullback", samples=3, seed=1))
    keep("tiny-lm/sequence_logprob", lm.explain(prompt, spmm.SequenceLogProb(" very good")))
    keep("tiny-lm/next_token", lm.explain([prompt, "a great"], " good"))

    sst2 = spmm.load("minilm-sst2")
    texts = ["a gripping, funny film", "Dull and lifeless. The plot never comes together!"]
    keep("minilm-sst2/soft_pullback", sst2.explain(texts))
    keep("minilm-sst2/integrated_gradients", sst2.explain(texts, "positive", "integrated_gradients", steps=4))

    dual = spmm.load("lite0-minilm", labels=["a photo of a cat", "a photo of a dog"])
    pixels = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    keep("lite0-minilm/image/top1", dual.explain([image]))
    keep("lite0-minilm/image/free_text", dual.explain([image], "a photo of a sleeping cat", "gradient"))
    keep("lite0-minilm/text", dual.explain_text(["a photo of a cat", "a dog on grass"], image=[image]))

    crepe = spmm.load("crepe-tiny")
    t = torch.arange(4000) / 16000
    tone = 0.5 * torch.sin(2 * torch.pi * 440.0 * t)
    keep("crepe-tiny/440Hz", crepe.explain(tone, "440Hz"))
    keep("crepe-tiny/top1/gradient", crepe.explain(tone, method="gradient"))
    return found


def compare(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> float:
    """Print the largest difference of each entry (NaN cells must match); return the largest overall."""
    if set(first) != set(second):
        raise SystemExit(f"different entries: {sorted(set(first) ^ set(second))}")
    largest = 0.0
    for name in sorted(first):
        a, b = first[name], second[name]
        if a.shape != b.shape or not torch.equal(torch.isnan(a), torch.isnan(b)):
            raise SystemExit(f"{name}: shapes {tuple(a.shape)} vs {tuple(b.shape)} or undefined cells differ")
        defined = ~torch.isnan(a)
        difference = float((a[defined] - b[defined]).abs().max()) if defined.any() else 0.0
        largest = max(largest, difference)
        print(f"{difference:.3g}\t{'equal' if torch.equal(a[defined], b[defined]) else 'differs'}\t{name}")
    print(f"largest difference: {largest:.3g}")
    return largest


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "save":
        torch.save(explanations(), sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(torch.load(sys.argv[2]), torch.load(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
