"""``spmm demo``: the main job on the embedded default model.

Explains scikit-image's ``chelsea`` and ``coffee`` pictures for their top-1 ImageNet
class with Gradient, SoftPullback and PullbackAscent on the embedded
EfficientNet-Lite0, writes one PNG panel per picture and prints the top-3 classes.
"""

from __future__ import annotations

import argparse
import json

import spmm

from .common import OutputFiles, progress

DEMO_MODEL = "efficientnet-lite0"
DEMO_PICTURES = ("chelsea", "coffee")
DEMO_METHODS = {"Gradient": "gradient", "SoftPullback": "soft_pullback", "PullbackAscent (x_K − x)": "pullback_ascent"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="explain two sample pictures with the embedded EfficientNet-Lite0 (no download)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="spmm-demo", help="output folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object per picture (the framework's schema)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import skimage.data

    from spmm.modalities.image import save_heatmap_panel

    files = OutputFiles(args.out)
    model = spmm.load(DEMO_MODEL)
    pictures = [getattr(skimage.data, picture)() for picture in DEMO_PICTURES]
    explanations = {
        label: model.explain(pictures, "top1", method, top_k=3, seed=0)
        for label, method in progress(list(DEMO_METHODS.items()), "demo")
    }
    reference = explanations["SoftPullback"]
    for i, picture in enumerate(DEMO_PICTURES):
        target = reference.target_label(i)
        path = save_heatmap_panel(
            reference.inputs[i],
            {label: e.attributions[i] for label, e in explanations.items()},
            files.path(files.stem(picture, DEMO_MODEL, "demo", target), ".png"),
            title=f"{picture}: explaining '{target}' (EfficientNet-Lite0)",
        )
        if args.json:
            record = reference.to_dict(include_scores=False)
            record["items"] = [dict(record["items"][i], input=picture)]
            record["files"] = [str(path)]
            print(json.dumps(record))
        else:
            listing = ", ".join(f"{p.label} ({p.probability:.1%})" for p in reference.predictions[i])
            print(f"{picture}: top-3 {listing}")
            print(f"  wrote {path}")
    return 0
