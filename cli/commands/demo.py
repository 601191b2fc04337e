"""``spmm demo``: the main job on the embedded default model.

Explains scikit-image's ``chelsea`` (a cat) and ``coffee`` (a cup) sample photographs, both CC0
and installed with scikit-image, for their top-1 ImageNet class with the Semantic Pullback and
the plain gradient on the embedded EfficientNet-Lite0; writes one PNG per picture (the input and
each method's |relevance| overlaid on it, with a colour bar) and prints the top-3 classes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .common import OutputFiles, progress

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import Tensor

DEMO_MODEL = "efficientnet-lite0"
DEMO_PICTURES = ("chelsea", "coffee")
DEMO_METHODS = {"Semantic Pullback": "soft_pullback", "Gradient": "gradient"}
"""Panel title -> method name, in the order the panels appear."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="explain two sample pictures with the embedded EfficientNet-Lite0 (no download)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="spmm-demo", help="output folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object per picture (the framework's schema)")
    parser.set_defaults(func=run)


def demo_figure(image: Tensor, attributions: Mapping[str, Tensor], title: str = "") -> Figure:
    """The demo's picture: the input, then each attribution's |relevance| overlaid on the greyed
    input (the overlay ``ImageExplanation.save`` draws), with one colour bar.

    image: (3, H, W) in [−1, 1]; attributions: panel title -> (3, H, W).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from spmm.modalities.image import MAP_KINDS, absolute_heatmap, overlay, to_display

    cmap, vmin, vmax, label = MAP_KINDS["absolute"]
    figure, axes = plt.subplots(1, 1 + len(attributions), figsize=(3.2 * (1 + len(attributions)), 3.8),
                                squeeze=False, layout="constrained")
    axes = list(axes[0])
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    axes[0].imshow(to_display(image))
    axes[0].set_title("Input")
    for axis, (name, attribution) in zip(axes[1:], attributions.items()):
        axis.imshow(overlay(image, absolute_heatmap(attribution), cmap=cmap))
        axis.set_title(name)
    figure.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), ax=axes[1:], fraction=0.03, pad=0.02,
                    label=label)
    if title:
        figure.suptitle(title)
    return figure


def save_demo_figure(image: Tensor, attributions: Mapping[str, Tensor], path: Path, title: str = "") -> Path:
    """Write :func:`demo_figure` as a PNG at ``path``; returns ``path``."""
    import matplotlib.pyplot as plt

    figure = demo_figure(image, attributions, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def run(args: argparse.Namespace) -> int:
    import skimage.data

    import spmm

    files = OutputFiles(args.out)
    model = spmm.load(DEMO_MODEL)
    pictures = [getattr(skimage.data, picture)() for picture in DEMO_PICTURES]
    explanations = {
        title: model.explain(pictures, "top1", method, top_k=3, seed=0)
        for title, method in progress(list(DEMO_METHODS.items()), "demo")
    }
    reference = explanations["Semantic Pullback"]
    for i, picture in enumerate(DEMO_PICTURES):
        target = reference.target_label(i)
        probability = reference.predictions[i][0].probability
        path = save_demo_figure(
            reference.inputs[i],
            {title: e.attributions[i] for title, e in explanations.items()},
            files.path(files.stem(picture, DEMO_MODEL, "demo", target), ".png"),
            title=f"{picture}: what made EfficientNet-Lite0 say '{target}' ({probability:.0%})",
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
