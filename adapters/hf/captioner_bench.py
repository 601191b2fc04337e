"""The ground-truth bench of the ``shapes-captioner`` (``spmm bench groundtruth --model
shapes-captioner``): every caption word that names an object, explained on the image, scored against
that object's mask, and the intervention check that makes the masks a ground truth.

One batch per scene (:func:`caption_batches`): its rows are the scene's naming words (colour and
shape of each object), each row the same image, its target the word's index in the caption and its
model a :class:`~.vlm_words.WordLogits` on the scene's prompt and true caption (teacher forcing).
``mask`` is the named object's pixels, ``other_mask`` the other objects'.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from spmm.bench.runner import Batch
from spmm.errors import SpmmInputError
from spmm.modalities.image.shapes_captions import (
    COLOUR_NAMES, OBJECTS, CaptionedScenes, captioned_scenes_at, naming_words,
)

from .vlm import VisionLanguageModality
from .vlm_words import WordLogits

MASK_METRICS = ["mass_accuracy", "mass_other", "pointing_hit", "mask_auroc", "rank_accuracy"]
HALVED = 0.5
"""A word's probability "drops" when deleting an object leaves at most this share of it."""


def scene_image(scenes: CaptionedScenes, index: int) -> Image.Image:
    """Scene ``index`` as the uint8 RGB image a user would save and load."""
    return Image.fromarray(np.round(scenes.images[index].transpose(1, 2, 0) * 255).astype(np.uint8))


def word_model(modality: Any, image: Image.Image, prompt: str, caption: str) -> tuple[WordLogits, torch.Tensor]:
    """The scene's :class:`WordLogits` over every caption word (the processor's prompt tokens, then the
    caption's) and its pixels (1, 3, H, W) in [−1, 1] as the processor makes them."""
    batch = modality.processor_input(image, prompt)
    words = modality.tokenizer.encode(caption, add_special_tokens=False)
    prompt_ids = batch["input_ids"][0].tolist()
    device = next(modality.lm.parameters()).device
    ids = torch.tensor([prompt_ids + words], device=device)
    positions = torch.arange(len(prompt_ids), len(prompt_ids) + len(words), device=device)
    pixels = modality.layout.prepare(image)[0].to(device)
    return WordLogits(modality.lm, modality.layout, ids, positions), pixels


def caption_batches(modality: Any, prompt: str, n: int, seed: int, size: int) -> list[Batch]:
    """One :class:`Batch` per scene of ``captioned_scenes_at(range(n), seed, size)`` (module docstring)."""
    scenes = captioned_scenes_at(range(n), seed, size)
    batches = []
    for i in range(n):
        model, pixels = word_model(modality, scene_image(scenes, i), prompt, scenes.captions[i])
        named = naming_words(scenes.colours[i], scenes.shapes[i])
        words = scenes.captions[i].split()
        masks = torch.from_numpy(scenes.masks[i]).to(pixels.device)
        rows = [k for _, k, _ in named]
        other = torch.stack([masks[[j for j in range(OBJECTS) if j != k]].any(0) for k in rows])
        batches.append(Batch(
            [f"caption-{seed}-{i:05d}-{w}-{words[w]}" for w, _, _ in named],
            pixels.expand(len(named), -1, -1, -1).clone(), torch.tensor([w for w, _, _ in named], device=pixels.device),
            {"mask": masks[rows], "other_mask": other}, model,
        ))
    return batches


@torch.no_grad()
def word_probabilities(model: WordLogits, pixels: torch.Tensor) -> torch.Tensor:
    """Softmax probability (R, W) of each caption word at its position, on pixels (R, 3, H, W)."""
    logits = model.outputs(pixels).logits[:, model.positions - 1]
    return logits.softmax(-1).gather(-1, model.words.view(1, -1, 1).expand(pixels.shape[0], -1, 1)).squeeze(-1)


def intervention_table(modality: Any, prompt: str, n: int, seed: int, size: int) -> pd.DataFrame:
    """Per naming word of ``n`` scenes: its probability on the full scene, with the named object
    deleted and with another object deleted (``captioned_scenes_at(..., drop=k)``), and whether each
    deletion dropped it (≤ :data:`HALVED` of the full-scene probability)."""
    full = captioned_scenes_at(range(n), seed, size)
    dropped = [captioned_scenes_at(range(n), seed, size, drop=k) for k in range(OBJECTS)]
    rows = []
    for i in range(n):
        model, pixels = word_model(modality, scene_image(full, i), prompt, full.captions[i])
        renders = [pixels] + [modality.layout.prepare(scene_image(d, i))[0].to(pixels.device)
                              for d in dropped]
        p = word_probabilities(model, torch.cat(renders)).cpu().numpy()  # (1 + OBJECTS, W)
        words = full.captions[i].split()
        for w, k, role in naming_words(full.colours[i], full.shapes[i]):
            others = [1 + j for j in range(OBJECTS) if j != k]
            row = {"sample": f"caption-{seed}-{i:05d}-{w}-{words[w]}", "word": words[w], "role": role,
                   "p_full": p[0, w], "p_named_deleted": p[1 + k, w], "p_other_deleted": p[others, w].min()}
            row["named_drop"] = row["p_named_deleted"] <= HALVED * row["p_full"]
            row["other_drop"] = row["p_other_deleted"] <= HALVED * row["p_full"]
            rows.append(row)
    return pd.DataFrame(rows)


def intervention_summary(table: pd.DataFrame) -> str:
    """The intervention check as markdown: share of words whose probability drops when the named /
    another object is deleted, and mean probabilities, overall and per role."""
    lines = ["| words | n | p (full scene) | p (named object deleted) | p (other deleted) | drops: named deleted ↑ "
             "| drops: other deleted ↓ |", "|---|---|---|---|---|---|---|"]
    for name, part in [("all", table), *table.groupby("role", sort=True)]:
        lines.append(f"| {name} | {len(part)} | {part.p_full.mean():.3f} | {part.p_named_deleted.mean():.3f} | "
                     f"{part.p_other_deleted.mean():.3f} | {part.named_drop.mean():.3f} | {part.other_drop.mean():.3f} |")
    return ("## Intervention check (a word's probability drops when it keeps ≤ "
            f"{HALVED:g} of its full-scene value)\n\n" + "\n".join(lines))


def intervention_report(modality: Any, prompt: str, n: int, seed: int, size: int, out: str | Path,
                        report_only: bool = False) -> str:
    """Write ``out/interventions.csv`` and ``interventions.json`` (computed, or read back with
    ``report_only``) and return the markdown of :func:`intervention_summary`."""
    out = Path(out)
    path = out / "interventions.csv"
    settings = {"n": n, "seed": seed, "size": size, "prompt": prompt, "halved": HALVED}
    stored = out / "interventions.json"
    fresh = not (path.exists() and stored.exists() and json.loads(stored.read_text()).get("settings") == settings)
    if report_only and fresh:
        return "(no intervention check for these settings: run without --report-only)"
    table = intervention_table(modality, prompt, n, seed, size) if fresh else pd.read_csv(path, dtype={"sample": str})
    table.to_csv(path, index=False)
    numbers = {"settings": settings, "words": len(table),
               "named_deleted_drop": float(table.named_drop.mean()), "other_deleted_drop": float(table.other_drop.mean()),
               "p_full": float(table.p_full.mean()), "p_named_deleted": float(table.p_named_deleted.mean()),
               "p_other_deleted": float(table.p_other_deleted.mean())}
    stored.write_text(json.dumps(numbers, indent=2) + "\n")
    return intervention_summary(table)


def contrast_markdown(scores: pd.DataFrame) -> str:
    """Per explainer: mean over words of (mass in the named object − mass in the other objects) with
    its 95% paired bootstrap CI (:func:`spmm.metrics.statistics.paired_bootstrap_ci`); a map that
    tells the named object from the other one has a CI above 0."""
    from spmm.metrics.statistics import paired_bootstrap_ci

    lines = ["| explainer | n | named − other mass [95% CI] |", "|---|---|---|"]
    for explainer, rows in scores.groupby("explainer", sort=False):
        wide = rows.pivot(index="sample", columns="metric", values="score")
        if not {"mass_accuracy", "mass_other"} <= set(wide.columns):
            continue
        both = wide[["mass_accuracy", "mass_other"]].dropna()
        low, high = paired_bootstrap_ci(both.mass_accuracy.to_numpy(), both.mass_other.to_numpy())
        mean = float((both.mass_accuracy - both.mass_other).mean())
        lines.append(f"| {explainer} | {len(both)} | {mean:+.3f} [{low:+.3f}, {high:+.3f}] |")
    return "\n".join(lines)


def role_tables(scores: pd.DataFrame, reference: str = "soft_pullback") -> str:
    """The bench's summary and paired tables (:mod:`spmm.bench.tables`) for colour words and for shape
    words apart (a sample id ends in its word), and :func:`contrast_markdown` of each, as markdown."""
    from spmm.bench.tables import paired_differences, paired_markdown, summary_markdown, summary_table

    colour = scores["sample"].str.rsplit("-", n=1).str[-1].isin(COLOUR_NAMES)
    parts = []
    for role, rows in (("colour", scores[colour]), ("shape", scores[~colour])):
        if rows.empty:
            continue
        parts.append(f"## {role.capitalize()} words: summary\n\n{summary_markdown(summary_table(rows))}\n\n"
                     f"## {role.capitalize()} words: paired differences vs {reference}\n\n"
                     f"{paired_markdown(paired_differences(rows, reference), reference)}\n\n"
                     f"## {role.capitalize()} words: mass in the named object vs the other\n\n{contrast_markdown(rows)}")
    return "\n\n".join(parts)


def caption_metric_specs(names: Sequence[str], batches: Sequence[Batch], seed: int,
                         overrides: dict[str, dict[str, Any]] | None = None) -> dict:
    """The image protocol's settings (|attr| summed over colour channels) for the mask metrics."""
    from spmm.modalities.image.bench import image_metric_specs

    return image_metric_specs(names, batches[0].inputs.shape[1:], seed, overrides)


def check_source(data: Any) -> None:
    """The captioner's bench draws its own captioned scenes: ``--data`` must be the shapes generator."""
    from spmm.modalities.image.bench import SHAPES_SOURCE

    if str(data) != SHAPES_SOURCE:
        raise SpmmInputError(f"the shapes captioner is benchmarked on its captioned scenes: --data {SHAPES_SOURCE}, "
                             f"got {data}")


class CaptionerModality(VisionLanguageModality):
    """The vision-language hooks of a captioner of shapes scenes, plus its ground-truth bench
    (``spmm bench groundtruth``: captioned scenes of ``--seed`` at ``side`` pixels, captioned after
    ``prompt``, the mask metrics, the intervention check)."""

    bench_kinds = {"groundtruth": MASK_METRICS}

    def __init__(self, processor: Any, max_length: int, *, lm: Any, prompt: str, side: int) -> None:
        super().__init__(processor, max_length, lm=lm)
        self.prompt, self.side = prompt, side

    def bench_batches(self, model: Any, data: Any, kind: str, n: int, batch_size: int, seed: int,
                      labels: Any = None) -> list[Batch]:
        """One batch per scene (:func:`caption_batches`); ``batch_size`` does not apply (a scene's rows share its caption)."""
        check_source(data)
        return caption_batches(self, self.prompt, n, seed, self.side)

    def bench_metrics(self, names: Sequence[str], batches: Sequence[Batch], seed: int,
                      overrides: dict[str, dict[str, Any]] | None = None) -> dict:
        return caption_metric_specs(names, batches, seed, overrides)

    def bench_report(self, n: int, seed: int, out: str | Path, report_only: bool = False) -> str:
        """The tables per word role (:func:`role_tables`, also in ``out/roles.md``) and the intervention
        check of the bench's scenes (:func:`intervention_report`)."""
        roles = role_tables(pd.read_csv(Path(out) / "scores.csv", dtype={"sample": str}))
        (Path(out) / "roles.md").write_text(roles + "\n")
        return roles + "\n\n" + intervention_report(self, self.prompt, n, seed, self.side, out, report_only)
