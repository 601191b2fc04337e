"""Text faithfulness benchmark: SP methods vs gradient baselines, occlusion and attention rollout.

SST-2 (frozen MiniLM + shipped head) or AG News (zero-shot MiniLM); the explained class is
the predicted one.  Per item and method: comprehensiveness / sufficiency AOPC at
10/20/50 % of tokens deleted / kept, deletion AUC of the class probability, random logit
(Pearson correlation with the explanation of another class), max-sensitivity (relative
change of the token scores under U(−r, r) embedding noise, r = 0.02 × the text's embedding
value range) and, with ``--pointing``, the sequence pointing game on concatenations of two
texts of different classes.  Rows go to a CSV (resumable); ``--summary`` prints the table.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/text/run_text_benchmark.py --dataset sst2 --items 300
    python benchmarks/text/run_text_benchmark.py --dataset sst2 --summary
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import sys
from pathlib import Path
from typing import Callable

from torch import Tensor

import torch
from tqdm import tqdm

import spmm
from spmm import Explainable
from spmm.modalities.text import EmbeddingModel, TextBatch, concatenate_segments, embed, encode_texts, token_scores
from spmm.modalities.text.datasets import read_ag_news, read_sst2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_metrics import faithfulness, pearson, relative_change  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SPMM_SHARED_DATA", HERE.parents[1].parent / "shared" / "data")) / "text"
SMOOTH = {"samples": 10, "noise": 0.02, "batch_size": 10}
INTEGRATED = {"steps": 16}
# name -> (spmm method, parameters, token score kind); None: computed here (occlusion, rollout)
METHODS = {
    "SoftPullback": ("soft_pullback", {}, "signed"),
    "SmoothPullback": ("smooth_pullback", SMOOTH, "signed"),
    "IntegratedPullbacks": ("integrated_pullbacks", INTEGRATED, "sum"),
    "Gradient": ("gradient", {}, "norm"),
    "GradientxInput": ("gradient", {}, "signed"),
    "SmoothGrad": ("smoothgrad", SMOOTH, "signed"),
    "IntegratedGradients": ("integrated_gradients", INTEGRATED, "sum"),
    "Occlusion": (None, {}, "occlusion"),
    "AttentionRollout": (None, {}, "rollout"),
}
COLUMNS = ["item", "method", "comprehensiveness", "sufficiency", "deletion_auc", "random_logit", "max_sensitivity",
           "pointing_game"]


def load(dataset: str) -> tuple[Explainable, list[str], list[int]]:
    if dataset == "sst2":
        texts, labels = read_sst2(DATA / "sst2" / "stsa.binary.test")
        return spmm.load("minilm-sst2"), texts, labels
    texts, labels = read_ag_news(DATA / "ag_news" / "test.csv")
    return spmm.load("minilm-agnews"), texts, labels


def probabilities(classifier: Explainable, ids: Tensor, mask: Tensor) -> Tensor:
    with torch.no_grad():
        return classifier.model(classifier.model.get_input_embeddings()(ids), mask).softmax(-1)


def occlusion_scores(classifier: Explainable, batch: TextBatch, classes: Tensor) -> Tensor:
    """Drop in the class logit when each attributable token is replaced by [MASK]: (B, L)."""
    out = torch.zeros(batch.input_ids.shape)
    mask_id = classifier.modality.tokenizer.mask_token_id
    for i in range(len(batch)):
        positions = batch.attributable[i].nonzero().flatten()
        ids = batch.input_ids[i].repeat(positions.numel() + 1, 1)
        ids[torch.arange(1, positions.numel() + 1), positions] = mask_id
        with torch.no_grad():
            logits = classifier.model(classifier.model.get_input_embeddings()(ids),
                                      batch.attention_mask[i].expand_as(ids))[:, classes[i]]
        out[i, positions] = logits[0] - logits[1:]
    return out


def rollout_scores(classifier: Explainable, batch: TextBatch, classes: Tensor) -> Tensor:
    """Attention rollout (heads averaged, residual added) read out by the masked mean pooling: (B, L)."""
    bert = classifier.model.sentence_encoder.encoder
    with torch.no_grad():
        attentions = bert(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                          output_attentions=True).attentions
    length = batch.input_ids.shape[1]
    rollout = torch.eye(length).expand(len(batch), length, length)
    for layer in attentions:
        mixed = 0.5 * layer.mean(1) + 0.5 * torch.eye(length)
        rollout = (mixed / mixed.sum(-1, keepdim=True)) @ rollout
    weights = batch.attention_mask.float() / batch.attention_mask.sum(1, keepdim=True)
    return torch.einsum("bq,bqk->bk", weights, rollout)


def method_scores(name: str, classifier: Explainable, batch: TextBatch, classes: Tensor,
                  embeddings: Tensor | None = None) -> Tensor:
    """Token scores (B, L) of one method for ``classes`` (B,)."""
    method, params, kind = METHODS[name]
    if kind == "occlusion":
        return occlusion_scores(classifier, batch, classes)
    if kind == "rollout":
        return rollout_scores(classifier, batch, classes)
    if embeddings is None:
        embeddings = embed(classifier.model, batch.input_ids)
    model = EmbeddingModel(classifier.model, batch.attention_mask, embeddings, batch.attributable)
    result = spmm.explain(model, embeddings, classes, method, rules=classifier.rules, seed=0, **params)
    return token_scores(result.attributions, embeddings, kind)


def kept_probability(classifier: Explainable, batch: TextBatch, i: int, cls: int) -> Callable[[Tensor], Tensor]:
    """(R, n) kept-token masks over text i's attributable tokens -> (R,) class probabilities."""
    real = batch.attention_mask[i].bool()
    ids = batch.input_ids[i][real]
    attributable = batch.attributable[i][real]
    pad = classifier.modality.tokenizer.pad_token_id

    def probability(kept: Tensor) -> Tensor:
        keep = torch.ones(kept.shape[0], ids.numel(), dtype=torch.bool)
        keep[:, attributable] = kept
        rows = torch.full((kept.shape[0], ids.numel()), pad)
        mask = torch.zeros_like(rows)
        for r in range(kept.shape[0]):
            rows[r, : int(keep[r].sum())] = ids[keep[r]]
            mask[r, : int(keep[r].sum())] = 1
        return probabilities(classifier, rows, mask)[:, cls]

    return probability


def other_classes(classes: Tensor, count: int, rng: random.Random) -> Tensor:
    return torch.tensor([rng.choice([c for c in range(count) if c != int(y)]) for y in classes])


def evaluate_chunk(classifier, texts, names, args, rng) -> list[dict]:
    batch = encode_texts(classifier.modality.tokenizer, texts)
    with torch.no_grad():
        embeddings = classifier.model.get_input_embeddings()(batch.input_ids)
        classes = classifier.model(embeddings, batch.attention_mask).argmax(-1)
    others = other_classes(classes, len(classifier.labels), rng)
    noises = []
    for _ in range(args.sensitivity_samples):
        span = embeddings.amax(dim=(1, 2), keepdim=True) - embeddings.amin(dim=(1, 2), keepdim=True)
        noises.append((torch.rand_like(embeddings) * 2 - 1) * 0.02 * span)
    rows = []
    for name in names:
        scores = method_scores(name, classifier, batch, classes)
        other = method_scores(name, classifier, batch, others)
        noisy = [method_scores(name, classifier, batch, classes, embeddings + noise) for noise in noises] \
            if METHODS[name][0] is not None else []
        for i in range(len(batch)):
            keep = batch.attributable[i]
            row = {"method": name, **faithfulness(scores[i][keep], kept_probability(classifier, batch, i, int(classes[i])))}
            row["random_logit"] = pearson(scores[i][keep], other[i][keep])
            row["max_sensitivity"] = max((relative_change(n[i][keep], scores[i][keep]) for n in noisy), default=float("nan"))
            rows.append(row)
    return rows


def pointing_items(texts: list[str], labels: list[int], count: int, rng: random.Random):
    """(text, target segment span, target class) for ``count`` concatenations of two different-class texts."""
    by_class: dict[int, list[str]] = {}
    for text, label in zip(texts, labels):
        by_class.setdefault(label, []).append(text)
    items = []
    for _ in range(count):
        a, b = rng.sample(sorted(by_class), 2)
        joined, spans = concatenate_segments([rng.choice(by_class[a]), rng.choice(by_class[b])])
        items.append((joined, spans[0], a))
    return items


def pointing_chunk(classifier, items, names) -> list[dict]:
    batch = encode_texts(classifier.modality.tokenizer, [text for text, _, _ in items])
    classes = torch.tensor([cls for _, _, cls in items])
    rows = []
    for name in names:
        scores = method_scores(name, classifier, batch, classes)
        for i, (_, span, _) in enumerate(items):
            inside = torch.tensor([span[0] <= s and e <= span[1] for s, e in batch.offsets[i]]) & batch.attributable[i]
            positive = scores[i].clamp_min(0) * batch.attributable[i]
            total = positive.sum().item()
            rows.append({"method": name, "pointing_game": positive[inside].sum().item() / total if total > 0 else 0.0})
    return rows


def summary(path: Path, reference: str = "SoftPullback") -> str:
    """Mean ± std per method and metric, then paired differences (method − ``reference``) over the items
    both have, with 95% percentile bootstrap CIs (2000 resamples, seed 0)."""
    import numpy as np

    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    metrics = [("comprehensiveness", "↑"), ("sufficiency", "↓"), ("deletion_auc", "↓"), ("random_logit", "↓"),
               ("max_sensitivity", "↓"), ("pointing_game", "↑")]
    values: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:  # first row per (method, metric, item): an interrupted chunk may have been rewritten
        for metric, _ in metrics:
            if r[metric] not in ("", "nan"):
                values.setdefault((r["method"], metric), {}).setdefault(r["item"], float(r[metric]))
    present = [m for m, _ in metrics if any((name, m) in values for name in METHODS)]
    lines = ["| method | n | " + " | ".join(f"{m} {d}" for m, d in metrics if m in present) + " |",
             "|---|---|" + "---|" * len(present)]
    for name in METHODS:
        mine = [values.get((name, m), {}) for m in present]
        if not any(mine):
            continue
        cells = [f"{np.mean(list(v.values())):.3f} ± {np.std(list(v.values()), ddof=1):.3f}" if len(v) > 1 else "–"
                 for v in mine]
        items = max(len(v) for v in mine)
        lines.append(f"| {name} | {items} | " + " | ".join(cells) + " |")
    rng = np.random.default_rng(0)
    paired = [f"\nPaired differences (method − {reference}), mean [95% bootstrap CI]:\n",
              "| method | " + " | ".join(f"Δ {m}" for m in present) + " |", "|---|" + "---|" * len(present)]
    for name in METHODS:
        if name == reference:
            continue
        cells = []
        for metric in present:
            mine, ref = values.get((name, metric), {}), values.get((reference, metric), {})
            common = sorted(set(mine) & set(ref))
            if len(common) < 2:
                cells.append("–")
                continue
            diff = np.array([mine[k] - ref[k] for k in common])
            means = diff[rng.integers(0, len(diff), (2000, len(diff)))].mean(1)
            low, high = np.percentile(means, [2.5, 97.5])
            cells.append(f"{diff.mean():+.3f} [{low:+.3f}, {high:+.3f}]")
        if any(c != "–" for c in cells):
            paired.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + paired)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["sst2", "agnews"], default="sst2")
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--pointing", type=int, default=0, help="number of two-segment concatenations")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--sensitivity-samples", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--summary", action="store_true", help="only print the summary table of --out")
    parser.add_argument("--reverse", action="store_true",
                        help="take the chunks last first (a second process on the same --out shares the work)")
    args = parser.parse_args()
    out = args.out or HERE / f"results_{args.dataset}.csv"
    if args.summary:
        print(summary(out))
        return
    torch.manual_seed(0)
    names = args.methods.split(",")
    classifier, texts, labels = load(args.dataset)
    rng = random.Random(0)
    picks = rng.sample(range(len(texts)), args.items)
    def done() -> set[tuple[str, str]]:  # read before every chunk: another process may append
        if not out.exists():
            return set()
        with open(out) as handle:
            return {(r["item"], r["method"]) for r in csv.DictReader(handle)}

    new_file = not out.exists()
    with open(out, "a", newline="") as handle:
        if new_file:
            csv.DictWriter(handle, COLUMNS).writeheader()
        jobs = [("faith", start) for start in range(0, len(picks), args.chunk)]
        jobs += [("point", start) for start in range(0, args.pointing, args.chunk)]
        point_items = pointing_items(texts, labels, args.pointing, random.Random(1))
        for kind, start in tqdm(jobs[::-1] if args.reverse else jobs, desc=f"{args.dataset} text benchmark"):
            if kind == "faith":
                ids = [f"{args.dataset}-{i}" for i in picks[start:start + args.chunk]]
            else:
                ids = [f"{args.dataset}-pair{j}" for j in range(start, min(start + args.chunk, args.pointing))]
            finished = done()
            todo = [n for n in names if any((k, n) not in finished for k in ids)]
            if not todo:
                continue
            if kind == "faith":
                rows = evaluate_chunk(classifier, [texts[i] for i in picks[start:start + args.chunk]], todo, args,
                                      random.Random(start))
            else:
                rows = pointing_chunk(classifier, point_items[start:start + args.chunk], todo)
            text = io.StringIO()  # one write per chunk, so that two processes' rows never interleave
            csv.DictWriter(text, COLUMNS).writerows({"item": ids[j % len(ids)], **row} for j, row in enumerate(rows))
            handle.write(text.getvalue())
            handle.flush()
    print(summary(out))


if __name__ == "__main__":
    main()
