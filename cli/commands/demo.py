"""``spmm demo``: the main job on the embedded default model.

Explains scikit-image's ``chelsea`` and ``coffee`` pictures for their top-1 ImageNet
class with Gradient, SoftPullback and PullbackAscent on the embedded
EfficientNet-Lite0, writes one PNG panel per picture and prints the top-3 classes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import spmm

DEMO_PICTURES = ("chelsea", "coffee")
DEMO_METHODS = {"Gradient": "gradient", "SoftPullback": "soft_pullback", "PullbackAscent (x_K − x)": "pullback_ascent"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="explain two sample pictures with the embedded EfficientNet-Lite0 (no download)"
    )
    parser.add_argument("--out", default="spmm-demo", help="output folder (default: ./spmm-demo)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per picture")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import skimage.data

    from spmm.adapters.vision import imagenet_class_names, load_efficientnet_lite0
    from spmm.modalities.image import load_images, save_heatmap_panel

    out = Path(args.out)
    model = load_efficientnet_lite0()
    names = imagenet_class_names()
    images = load_images([getattr(skimage.data, picture)() for picture in DEMO_PICTURES])
    with torch.no_grad():
        probabilities = model(images).softmax(dim=1)
    top3 = probabilities.topk(3, dim=1)
    targets = top3.indices[:, 0]
    explanations = {label: spmm.explain(model, images, targets, method) for label, method in DEMO_METHODS.items()}
    for i, picture in enumerate(DEMO_PICTURES):
        target_name = names[targets[i]]
        path = save_heatmap_panel(
            images[i],
            {label: e.attributions[i] for label, e in explanations.items()},
            out / f"{picture}.png",
            title=f"{picture}: explaining '{target_name}' (EfficientNet-Lite0)",
        )
        classes = [
            {"class": names[c], "index": int(c), "probability": round(float(p), 4)}
            for p, c in zip(top3.values[i], top3.indices[i])
        ]
        if args.json:
            print(json.dumps({"picture": picture, "top3": classes, "target": target_name, "file": str(path)}))
        else:
            listing = ", ".join(f"{c['class']} ({c['probability']:.1%})" for c in classes)
            print(f"{picture}: top-3 {listing}")
            print(f"  wrote {path}")
    return 0
