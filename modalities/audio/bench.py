"""The audio protocol of SPEC §5 for ``spmm bench``: labelled clip folders, audio mosaics, time-frequency
(TF) patch groups and the audio metric settings.

Inputs are the model's TF input (B, T, F).  A waveform model is explained through its phase-locked
inverse STFT, which holds one clip's phase: its batches hold one clip each and carry that model
(``Batch.model``), so that every row the metrics build (noise draws, other classes) shares the phase.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from spmm.bench.runner import Batch, MetricSpec, metric_specs
from spmm.errors import SpmmInputError
from spmm.metrics.groups import FeatureGroups

from .groups import as_feature_groups, tf_patches
from .io import load_audio, pad_or_crop
from .mosaic import audio_mosaic, frame_slots

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg"}
PATCH_GRID = (10, 5)
"""TF patches: about 10 along time and 5 along frequency (10 frames × 8 mel bands for honk's (101, 40))."""
SENSITIVITY_SHARE = 0.01
"""Max-sensitivity radius as a share of a clip's value range (max − min)."""
MOSAIC_SLOTS = 4
"""Audio mosaics: four clip-long slots, the target clip in two of them."""


def labelled_clips(folder: str | Path, labels: Sequence[str]) -> tuple[list[Path], list[str], list[int]]:
    """Audio files of ``folder`` (sorted), their ids (paths relative to ``folder``) and class indices.

    Labels come from ``labels.csv`` (columns file, label) or, without it, from the subfolder of each
    file (Speech Commands layout).  A label is a class index, one of the model's ``labels``, or
    otherwise the model's ``_unknown_`` class when it has one (Speech Commands words honk does not spot).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no data folder at {folder}")
    table = folder / "labels.csv"
    if table.exists():
        with table.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or not {"file", "label"} <= set(rows[0]):
            raise SpmmInputError(f"{table} needs the columns file and label")
        pairs = sorted((r["file"], r["label"].strip()) for r in rows)
    else:
        pairs = sorted((str(p.relative_to(folder)), p.parent.name)
                       for p in folder.glob("*/*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not pairs:
        raise SpmmInputError(f"no labelled audio in {folder} (subfolders per label, or labels.csv with file,label)")
    return [folder / f for f, _ in pairs], [f for f, _ in pairs], [_label_index(v, labels, folder) for _, v in pairs]


def _label_index(value: str, labels: Sequence[str], folder: Path) -> int:
    if value.isdigit():
        return int(value)
    if value in labels:
        return list(labels).index(value)
    if "_unknown_" in labels:
        return list(labels).index("_unknown_")
    raise SpmmInputError(f"{folder}: label {value!r} is neither a class index nor one of the model's labels")


def _clips(pipeline: Any, files: Sequence[Path]) -> Tensor:
    """(N, S) waveforms at the model's rate, padded or cut to its clip length (1 s for any-length models)."""
    length = pipeline.clip_samples or pipeline.sample_rate
    return torch.stack([pad_or_crop(load_audio(f, pipeline.sample_rate), length) for f in files])


def _batches(pipeline: Any, ids: Sequence[str], waves: Tensor, targets: Sequence[int], batch_size: int,
             kwargs: Sequence[dict[str, Any]] | None = None) -> list[Batch]:
    """Batches of TF inputs (B, T, F); one clip per batch, with its phase-locked model, for waveform models."""
    device = next(pipeline.model.parameters()).device
    pipeline.front_end.to(device)
    waves = waves.to(device)
    per_clip = pipeline.explained_model(waves[:1]) is not pipeline.model
    size = 1 if per_clip else batch_size
    batches = []
    for start in range(0, len(ids), size):
        wave = waves[start : start + size]
        extra = {}
        if kwargs is not None:
            part = kwargs[start : start + size]
            extra = {"groups": part[0]["groups"], "target_groups": torch.stack([k["target_groups"] for k in part])}
        batches.append(Batch(
            list(ids[start : start + size]), pipeline.inputs(wave), torch.tensor(targets[start : start + size], device=device),
            extra, pipeline.explained_model(wave) if per_clip else None,
        ))
    return batches


def _order(count: int, seed: int) -> list[int]:
    """The seeded permutation clips are drawn in (``torch.randperm`` with ``seed``)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()


def mosaic_specs(labels: Sequence[int], predicted: Sequence[int], class_names: Sequence[str], count: int,
                 seed: int) -> list[tuple[int, list[int], list[int]]]:
    """(target clip, two distractor clips, target slots) of ``count`` mosaics: the target a clip the model
    classifies correctly, of a real class (not a catch-all such as ``_unknown_``), in 2 random slots of
    4; the distractors correctly classified clips of other classes; drawn with ``torch.Generator(seed)``."""
    real = [i for i, (y, p) in enumerate(zip(labels, predicted))
            if y == p and not (class_names and class_names[y].startswith("_") and class_names[y].endswith("_"))]
    if len({labels[i] for i in real}) < 2:
        raise SpmmInputError("audio mosaics need correctly classified clips of at least two classes")
    generator = torch.Generator().manual_seed(seed)
    specs = []
    while len(specs) < count:
        target = real[int(torch.randint(len(real), (1,), generator=generator))]
        others = [i for i in real if labels[i] != labels[target]]
        picks = torch.randperm(len(others), generator=generator)[:2].tolist()
        slots = sorted(torch.randperm(MOSAIC_SLOTS, generator=generator)[:2].tolist())
        specs.append((target, [others[p] for p in picks], slots))
    return specs


def bench_batches(pipeline: Any, data: str | Path, kind: str, n: int, batch_size: int, seed: int) -> list[Batch]:
    """``faithfulness``: the first ``n`` clips of a seeded permutation of the folder, explained for their
    label; ``focus``: ``n`` mosaics (:func:`mosaic_specs`) of clips of the whole folder with metric
    arguments ``groups`` (the mosaic's time slots) and ``target_groups`` (B, 4)."""
    files, ids, labels = labelled_clips(data, pipeline.labels)
    order = _order(len(files), seed)
    if kind != "focus":
        chosen = order[:n]
        return _batches(pipeline, [ids[i] for i in chosen], _clips(pipeline, [files[i] for i in chosen]),
                        [labels[i] for i in chosen], batch_size)
    waves = _clips(pipeline, [files[i] for i in order])
    labels = [labels[i] for i in order]
    predicted = torch.cat([pipeline.logits(waves[s : s + 64]).argmax(-1).cpu() for s in range(0, len(waves), 64)])
    specs = mosaic_specs(labels, predicted.tolist(), pipeline.labels, n, seed)
    mosaics = torch.stack([audio_mosaic(waves[t], [waves[d] for d in ds], slots) for t, ds, slots in specs])
    frames = pipeline.inputs(mosaics[:1].to(next(pipeline.model.parameters()).device)).shape[1]
    slot_of_frame = frame_slots(frames, pipeline.front_end.hop, waves.shape[-1], MOSAIC_SLOTS)
    groups = FeatureGroups(slot_of_frame.view(-1, 1), MOSAIC_SLOTS)
    kwargs = [{"groups": groups, "target_groups": torch.isin(torch.arange(MOSAIC_SLOTS), torch.tensor(slots))}
              for _, _, slots in specs]
    return _batches(pipeline, [f"mosaic{j:04d}" for j in range(n)], mosaics, [labels[t] for t, _, _ in specs],
                    batch_size, kwargs)


def audio_metric_specs(names: Sequence[str], batches: Sequence[Batch], seed: int = 0,
                       overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, MetricSpec]:
    """Audio settings on TF inputs (B, T, F), as the audio benchmark this replaces: TF patches of
    T//10 frames × F//5 bins (:data:`PATCH_GRID`), removed patches set to 0 (digital silence for
    log-mel inputs); Infidelity on the patch grid and the grid of twice the patch size with U(min, max)
    noise over the benched inputs, 5 draws; faithfulness correlation; deletion one patch per step;
    max-sensitivity 10 draws of radius 1 % of the clips' mean value range; random logit; Focus on the
    positive attribution itself (log-mel values have no sign meaning "evidence")."""
    frames, bins = batches[0].inputs.shape[1:]
    patch = (max(1, frames // PATCH_GRID[0]), max(1, bins // PATCH_GRID[1]))
    fine = as_feature_groups(tf_patches((frames, bins), *patch))
    coarse = as_feature_groups(tf_patches((frames, bins), 2 * patch[0], 2 * patch[1]))
    flat = torch.cat([b.inputs.flatten(1) for b in batches])
    ranges = flat.amax(1) - flat.amin(1)
    settings: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "infidelity": ({"draws": 5, "low": float(flat.min()), "high": float(flat.max())}, {"groups": [fine, coarse]}),
        "faithfulness_correlation": ({"baseline": 0.0}, {"groups": fine}),
        "deletion_auc": ({"groups_per_step": 1, "baseline": 0.0}, {"groups": fine}),
        "insertion_auc": ({"groups_per_step": 1, "baseline": 0.0}, {"groups": fine}),
        "max_sensitivity": ({"samples": 10, "radius": SENSITIVITY_SHARE * float(ranges.mean())}, {}),
        "random_logit": ({}, {}),
        "focus": ({"times_input": False}, {}),
    }
    return metric_specs(names, settings, seed, overrides)
