"""Train a synthetic-shapes classifier on CPU and ship it with the package.

Trains ``--arch`` (resnet | vgg | vit, see ``spmm.adapters.vision.shapes``) on a pool of
``make_shapes(--train, seed=--seed)`` scenes (kept in memory as uint8, with random 90° rotations
and flips: every class is closed under them), then measures test accuracy and the intervention
check (``spmm.modalities.image.shapes_interventions``) on the held-out seed ``--test-seed``.
``--object-deleted N`` adds the first N training scenes rendered without their class object,
labelled by the same rule (the shape of the largest remaining object): without them a model only
ever sees one large object and may keep its class when that object is gone.
Writes ``<out>/shapes_<arch>.safetensors`` (the classifier without its [−1, 1] wrapper) and
``shapes_<arch>.json`` (numbers, command, versions).

    OMP_NUM_THREADS=1 nice -n 5 python examples/train_shapes.py --arch resnet --out adapters/data

One thread: on a shared 2-core machine two threads spent ~6x the CPU time per batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import timm
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from spmm.adapters.vision.shapes import ARCHITECTURES, SHAPES_SIZE, build_shapes_model, wrap_unit_range
from spmm.modalities.image.shapes import SHAPE_CLASSES, shapes_at
from spmm.modalities.image.shapes_interventions import check_interventions

LEARNING_RATES = {"resnet": 3e-3, "vgg": 2e-3, "vit": 2e-3}
CHUNK = 1000
"""Scenes generated per step while building the training pool (for the progress bar)."""


def training_pool(n: int, seed: int, size: int, cache: Path | None, drop: str | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 3, size, size) uint8 and labels (n,) of make_shapes(n, seed, size, drop), cached as
    .npz (a cache of at least n scenes of that seed and size serves its first n).  With
    ``drop="object"`` the labels are the rule's answer for the render (``labels_without_object``)."""
    if cache is not None and drop is not None:
        cache = cache.with_name(f"{cache.stem}_without_{drop}{cache.suffix}")
    if cache is not None and cache.exists():
        stored = np.load(cache)
        if len(stored["labels"]) >= n and stored["images"].shape[2] == size and int(stored["seed"]) == seed:
            return torch.from_numpy(stored["images"][:n]), torch.from_numpy(stored["labels"][:n])
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for start in tqdm(range(0, n, CHUNK), desc="generating training scenes"):
        part = shapes_at(range(start, min(start + CHUNK, n)), seed, size, drop)
        images[start:start + len(part.labels)] = np.round(part.images * 255)
        labels[start:start + len(part.labels)] = part.labels_without_object if drop == "object" else part.labels
    if cache is not None:
        np.savez(cache, images=images, labels=labels, seed=seed)
    return torch.from_numpy(images), torch.from_numpy(labels)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 90° rotation and horizontal flip of a whole batch (B, 3, H, W)."""
    turns = int(torch.randint(4, (1,), generator=generator))
    x = torch.rot90(x, turns, dims=(2, 3))
    return x.flip(3) if bool(torch.randint(2, (1,), generator=generator)) else x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHITECTURES, required=True)
    parser.add_argument("--out", type=Path, default=Path("adapters/data"))
    parser.add_argument("--train", type=int, default=12000, help="training scenes (seed --seed)")
    parser.add_argument("--object-deleted", type=int, default=0,
                        help="also train on the first N of those scenes without their class object")
    parser.add_argument("--epochs", type=int, default=8, help="0: only measure --init weights")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--test-seed", type=int, default=1000)
    parser.add_argument("--test", type=int, default=2000, help="held-out scenes for accuracy and interventions")
    parser.add_argument("--init", type=Path, default=None,
                        help="continue from these weights (a shapes_<arch>.safetensors of an earlier run)")
    parser.add_argument("--cache", type=Path, default=None, help="optional .npz cache of the training pool")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    started = time.time()
    images, labels = training_pool(args.train, args.seed, SHAPES_SIZE, args.cache)
    if args.object_deleted:
        extra_images, extra_labels = training_pool(args.object_deleted, args.seed, SHAPES_SIZE, args.cache, "object")
        images, labels = torch.cat([images, extra_images]), torch.cat([labels, extra_labels])
    model = build_shapes_model(args.arch, len(SHAPE_CLASSES))
    if args.init is not None:
        model.load_state_dict(load_file(str(args.init)))
        previous = args.init.with_suffix(".json")
        card = json.loads(previous.read_text()) if previous.exists() else {}
        history = card.get("commands") or [card.get("command", f"(weights {args.init})")]
    else:
        history = []
    wrapped = wrap_unit_range(model, args.arch)
    lr = args.lr or LEARNING_RATES[args.arch]
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps_per_epoch = len(labels) // args.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=max(args.epochs * steps_per_epoch, 1),
                                                   pct_start=0.15)
    weights = args.out / f"shapes_{args.arch}.safetensors"
    args.out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        wrapped.train()
        order = torch.randperm(len(labels), generator=generator)
        bar = tqdm(range(steps_per_epoch), desc=f"training {args.arch} epoch {epoch + 1}/{args.epochs}")
        correct = seen = 0
        for step in bar:
            index = order[step * args.batch_size:(step + 1) * args.batch_size]
            x = augment(images[index].float() / 127.5 - 1, generator)
            logits = wrapped(x)
            loss = torch.nn.functional.cross_entropy(logits, labels[index], label_smoothing=0.05)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            correct += int((logits.argmax(1) == labels[index]).sum())
            seen += len(index)
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{correct / seen:.3f}")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))  # resumable with --init
    wrapped.eval()
    minutes = (time.time() - started) / 60
    result = check_interventions(wrapped, args.test, args.test_seed, SHAPES_SIZE)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    card = {
        "name": f"shapes-{args.arch}",
        "labels": list(SHAPE_CLASSES),
        "input": f"(B, 3, {SHAPES_SIZE}, {SHAPES_SIZE}) in [-1, 1]",
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_scenes": args.train, "train_scenes_without_object": args.object_deleted, "train_seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size,
        "learning_rate": lr,
        "test_seed": result.seed, "test_scenes": result.n,
        "test_accuracy": result.accuracy,
        "object_deleted_prediction_changed": result.object_change,
        "distractors_deleted_prediction_changed": result.distractor_change,
        "ground_truth_trusted": result.trusted,
        "train_minutes": round(minutes, 1),
        "commands": history + [f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python " + " ".join(sys.argv)],
        "torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version(),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs",
        "load_average": os.getloadavg()[0],
    }
    (args.out / f"shapes_{args.arch}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
