"""The text protocol of SPEC §5 for ``spmm bench``: labelled text files, segment mosaics for the
sequence pointing game, word feature groups and the text metric settings.

Texts are batched by token count, so a batch needs no padding and its model (the body closed over
one shared attention mask, :class:`~.embedding.EmbeddingModel`) takes any number of rows: noise
draws, other classes and perturbations.  The explained class of a faithfulness item is the
model's predicted class (as in the text benchmark this replaces); of a pointing pair, the label of
its first segment.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from spmm.bench.runner import Batch, MetricSpec, metric_specs
from spmm.errors import SpmmInputError
from spmm.metrics.groups import FeatureGroups

from .batch import TextBatch, encode_texts
from .datasets import read_ag_news, read_sst2
from .embedding import EmbeddingModel, embed
from .words import concatenate_segments, word_groups

FRACTIONS = (0.1, 0.2, 0.5)
"""Comprehensiveness/sufficiency: shares of a text's words removed / kept (ERASER AOPC)."""
SENSITIVITY_SHARE = 0.02
"""Max-sensitivity radius as a share of a text's embedding value range (max − min)."""


def read_labelled_texts(path: str | Path, labels: Sequence[str] | None) -> tuple[str, list[str], list[int]]:
    """(name, texts, label indices) of a labelled text file.

    ``stsa.binary.*``: SST-2 lines ``label text`` (name ``sst2``); a CSV whose first row is
    ``"1".."4", title, description``: AG News (name ``agnews``, labels 0..3); any other CSV needs
    the columns ``text`` and ``label`` (a class index, or a name from ``labels``; name = the file's stem).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no text file at {path}")
    if path.name.startswith("stsa.binary"):
        return ("sst2", *read_sst2(path))
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise SpmmInputError(f"{path} is empty")
    if len(rows[0]) == 3 and rows[0][0] in ("1", "2", "3", "4"):
        return ("agnews", *read_ag_news(path))
    header = [c.strip() for c in rows[0]]
    if not {"text", "label"} <= set(header):
        raise SpmmInputError(f"{path}: a text CSV needs the columns text and label (or SST-2 / AG News files)")
    text_col, label_col = header.index("text"), header.index("label")
    body = [r for r in rows[1:] if r]
    return path.stem, [r[text_col] for r in body], [_label_index(r[label_col].strip(), labels, path) for r in body]


def _label_index(value: str, labels: Sequence[str] | None, path: Path) -> int:
    if value.lstrip("-").isdigit():
        return int(value)
    if labels is None or value not in labels:
        raise SpmmInputError(f"{path}: label {value!r} is neither a class index nor one of the model's labels")
    return list(labels).index(value)


def text_batches(
    body: nn.Module, tokenizer: Any, texts: Sequence[str], ids: Sequence[str], targets: Sequence[int] | None,
    batch_size: int, *, max_length: int | None = None, add_special_tokens: bool = True,
    segments: Sequence[tuple[int, int]] | None = None,
) -> list[Batch]:
    """Batches of texts of one token count (and one special-token layout), each with its model
    (``Batch.model``: ``body`` closed over the shared attention mask and special-token embeddings).

    inputs: token embeddings (B, L, D); targets: ``targets`` or, when None, the predicted classes;
    metric_kwargs ``groups``: per-sample word groups, labels (B, L, 1), −1 for special tokens;
    with ``segments`` (one character span per text): ``target_groups`` (B, G), the words inside it.
    """
    device = next(body.parameters()).device
    encoded = encode_texts(tokenizer, texts, max_length=max_length, add_special_tokens=add_special_tokens)
    layouts: dict[tuple, list[int]] = {}
    for i in range(len(texts)):
        length = int(encoded.attention_mask[i].sum())
        layout = (length, tuple(encoded.special_mask[i, :length].nonzero().flatten().tolist()))
        layouts.setdefault(layout, []).append(i)
    batches = []
    for layout in sorted(layouts):
        members = layouts[layout]
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            batch = encode_texts(tokenizer, [texts[i] for i in chunk], max_length=max_length,
                                 add_special_tokens=add_special_tokens).to(device)
            embeddings = embed(body, batch.input_ids)
            model = EmbeddingModel(body, batch.attention_mask[:1], embeddings[:1], batch.attributable[:1])
            if targets is None:
                with torch.no_grad():
                    chosen = model(embeddings).argmax(-1)
            else:
                chosen = torch.tensor([targets[i] for i in chunk], device=device)
            labels = word_groups(batch)
            groups = FeatureGroups(labels.unsqueeze(-1).to(device), max(1, int(labels.max()) + 1), per_sample=True)
            kwargs: dict[str, Any] = {"groups": groups}
            if segments is not None:
                kwargs["target_groups"] = _segment_words(batch, labels, [segments[i] for i in chunk], groups.count)
            batches.append(Batch([ids[i] for i in chunk], embeddings, chosen, kwargs, model))
    return batches


def _segment_words(batch: TextBatch, labels: Tensor, spans: Sequence[tuple[int, int]], count: int) -> Tensor:
    """(B, G) bool: the words whose tokens all lie inside each text's character span."""
    inside = torch.ones(len(spans), count + 1, dtype=torch.bool)
    seen = torch.zeros(len(spans), count + 1, dtype=torch.bool)
    for i, (start, end) in enumerate(spans):
        for position, word in enumerate(labels[i].tolist()):
            if word >= 0:
                token_start, token_end = batch.offsets[i][position]
                seen[i, word] = True
                inside[i, word] &= start <= token_start and token_end <= end
    return (inside & seen)[:, :count].to(batch.input_ids.device)


def pointing_pairs(texts: Sequence[str], labels: Sequence[int], count: int, seed: int) -> list[tuple[str, tuple[int, int], int]]:
    """(text, target segment span, target class) of ``count`` concatenations of two texts of
    different classes drawn with ``random.Random(seed)``; the target is the first segment."""
    by_class: dict[int, list[str]] = {}
    for text, label in zip(texts, labels):
        by_class.setdefault(label, []).append(text)
    if len(by_class) < 2:
        raise SpmmInputError("the pointing game needs texts of at least two classes")
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        a, b = rng.sample(sorted(by_class), 2)
        joined, spans = concatenate_segments([rng.choice(by_class[a]), rng.choice(by_class[b])])
        pairs.append((joined, spans[0], a))
    return pairs


def bench_batches(modality: Any, body: nn.Module, labels: Sequence[str] | None, data: str | Path, kind: str, n: int,
                  batch_size: int, seed: int) -> list[Batch]:
    """``faithfulness``: ``n`` texts drawn with ``random.Random(seed).sample`` (ids ``NAME-ROW``),
    explained for the predicted class; ``focus``: ``n`` two-segment pairs drawn with
    ``random.Random(seed + 1)`` (ids ``NAME-pairJ``), explained for the first segment's label."""
    name, texts, classes = read_labelled_texts(data, labels)
    options = {"max_length": modality.max_length, "add_special_tokens": modality.add_special_tokens}
    if kind == "focus":
        pairs = pointing_pairs(texts, classes, n, seed + 1)
        return text_batches(body, modality.tokenizer, [p[0] for p in pairs], [f"{name}-pair{j}" for j in range(n)],
                            [p[2] for p in pairs], batch_size, segments=[p[1] for p in pairs], **options)
    rows = random.Random(seed).sample(range(len(texts)), min(n, len(texts)))
    return text_batches(body, modality.tokenizer, [texts[i] for i in rows], [f"{name}-{i}" for i in rows], None,
                        batch_size, **options)


def mask_embedding(batches: Sequence[Batch], tokenizer: Any) -> Tensor:
    """The embedding (D,) of the tokenizer's mask token (its pad token when it has none), the
    value a removed word takes."""
    token = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.pad_token_id
    if token is None:
        raise SpmmInputError("the text metrics replace removed words by [MASK] or [PAD]; this tokenizer has neither")
    body = batches[0].model.body
    return embed(body, torch.tensor([[token]], device=batches[0].inputs.device))[0, 0]


def text_metric_specs(names: Sequence[str], batches: Sequence[Batch], tokenizer: Any, seed: int = 0,
                      overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, MetricSpec]:
    """Text settings (SPEC §5) over word groups: words ranked by their signed score Σ⟨attr, embedding⟩;
    comprehensiveness/sufficiency over 10/20/50 % of the words and deletion one word per step,
    removed words replaced by the [MASK] embedding; max-sensitivity 3 draws of radius 2 % of the
    texts' mean embedding range; random logit; the pointing game on the mosaics' target segments."""
    mask = mask_embedding(batches, tokenizer)
    ranges = torch.cat([b.inputs.flatten(1).amax(1) - b.inputs.flatten(1).amin(1) for b in batches])
    removal = {"baseline": mask, "times_input": True}
    init: dict[str, dict[str, Any]] = {
        "comprehensiveness": {"fractions": list(FRACTIONS), **removal},
        "sufficiency": {"fractions": list(FRACTIONS), **removal},
        "deletion_auc": {"groups_per_step": 1, **removal},
        "insertion_auc": {"groups_per_step": 1, **removal},
        "max_sensitivity": {"samples": 3, "radius": SENSITIVITY_SHARE * float(ranges.mean())},
        "random_logit": {},
        "pointing_game": {},
    }
    return metric_specs(names, {name: (settings, {}) for name, settings in init.items()}, seed, overrides)
