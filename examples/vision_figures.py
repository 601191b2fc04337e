"""Reproduce the paper's qualitative image figures: method comparison, counterfactuals, accentuations.

    python examples/vision_figures.py                       # embedded EfficientNet-Lite0 (efficientnet-lite0)
    python examples/vision_figures.py --model resnet50 --weights resnet50.pth
    python examples/vision_figures.py --data /path/to/imagenet-sample --count 6 --out figures

Images come from ``../shared/data/imagenet-sample`` beside the repository (or ``--data``), whose
``labels.csv`` lists ``file, class_index, synset, name``; any folder of images works without it
(targets are then the model's top-1 classes).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

import spmm
from spmm.modalities.image import (
    save_accentuation_grid,
    save_comparison_grid,
    save_counterfactual_grid,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "imagenet-sample"
COMPARISON_METHODS = ("gradient", "smoothgrad", "integrated_gradients", "guided_gradcam", "soft_pullback",
                      "pullback_ascent")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def sample_images(folder: Path, count: int) -> tuple[list[Path], list[int | str]]:
    """The first ``count`` images of ``folder`` and their labels (``labels.csv``) or "top1"."""
    labels = folder / "labels.csv"
    if labels.is_file():
        with open(labels) as handle:
            rows = list(csv.DictReader(handle))[:count]
        return [folder / row["file"] for row in rows], [int(row["class_index"]) for row in rows]
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    return files, ["top1"] * len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of images (default: %(default)s)")
    parser.add_argument("--model", default="efficientnet-lite0", help="model spec (anything spmm.load takes)")
    parser.add_argument("--weights", default=None, help="checkpoint for --model (paper models: resnet50, vgg11_bn, pvt_v2_b1)")
    parser.add_argument("--count", type=int, default=4, help="number of images (default 4)")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default ./figures)")
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"no image folder at {args.data}; pass --data")

    files, targets = sample_images(args.data, args.count)
    model = spmm.load(args.model, **({"weights": args.weights} if args.weights else {}))
    images = model.prepare(files).inputs
    tag = args.model.replace(":", "_")

    maps, explanation = {}, None
    for method in COMPARISON_METHODS:
        explanation = model.explain(images, targets, method, seed=0)
        maps[method] = explanation.attributions
    row_titles = [explanation.target_label(i) for i in range(len(files))]
    print(save_comparison_grid(images, maps, args.out / f"comparison_{tag}.png", row_titles,
                               title=f"Method comparison — {args.model}"))

    with torch.no_grad():
        ranked = model.model(images[:1]).argsort(1, descending=True)[0]
    alternatives = [int(ranked[1]), int(ranked[5])]  # the runner-up and a less likely class
    trajectories, scores = {}, {}
    for target in alternatives:
        explanation = model.explain(images[:1], target, "pullback_ascent")
        label = explanation.target_label(0)
        trajectories[label] = explanation.extras["trajectory"][:, 0]
        scores[label] = explanation.extras["step_scores"][:, 0]
    print(save_counterfactual_grid(trajectories, args.out / f"counterfactuals_{tag}.png", scores,
                                   title=f"Counterfactuals (PullbackAscent) from '{row_titles[0]}' — {args.model}"))

    accentuation = model.explain(images, targets, "pullback_ascent")
    print(save_accentuation_grid(images, images + accentuation.attributions, args.out / f"accentuations_{tag}.png",
                                 row_titles, title=f"Accentuations (PullbackAscent towards the label) — {args.model}"))


if __name__ == "__main__":
    main()
