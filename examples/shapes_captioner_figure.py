"""The captioner's ground-truth figure: a captioned scene, its caption, and one heatmap per word that
names an object (colour and shape of each), per method — the maps the ground-truth bench scores.

    python examples/shapes_captioner_figure.py --out benchmarks/shapes/captioner_maps.png

Rows: methods (the bench's explainers, the attention baseline included); columns: the scene (titled
with the true caption and the model's greedy one), then each naming word with its object's outline.
Maps are |attribution| summed over colour channels, scaled to their 99.5th percentile
(:func:`spmm.modalities.image.absolute_heatmap`); the title gives the share of the map's mass inside
the named object's mask.
"""

from __future__ import annotations

import argparse
from pathlib import Path


import spmm
from spmm.adapters.hf.captioner_bench import caption_batches, scene_image
from spmm.adapters.hf.shapes_captioner import PROMPT, SIDE
from spmm.bench.explainers import bench_explainers
from spmm.modalities.image import absolute_heatmap, to_display
from spmm.modalities.image.shapes_captions import captioned_scenes_at

METHODS = {"SoftPullback": "soft_pullback", "IntegratedPullbacks": "integrated_pullbacks", "Gradient": "gradient",
           "IG": "integrated_gradients", "SmoothGrad": "smoothgrad", "Attention": "attention:image"}
SETTINGS = {"integrated_gradients": {"steps": 16}, "integrated_pullbacks": {"steps": 16}, "smoothgrad": {"samples": 10}}
"""The bench's --preset cpu-small settings."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=int, default=0, help="scene index of --seed")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (the bench's; training used seed 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/shapes/captioner_maps.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = spmm.load("shapes-captioner")
    batch = caption_batches(model.modality, PROMPT, args.scene + 1, args.seed, SIDE)[args.scene]
    explainers = bench_explainers(list(METHODS.values()), model.rules, args.seed, SETTINGS)
    maps = {title: explainers[name](batch.model, batch.inputs, batch.targets).detach() for title, name in METHODS.items()}
    scenes = captioned_scenes_at([args.scene], args.seed, SIDE)
    image = scene_image(scenes, 0)
    greedy = model.explain(image, prompt=PROMPT, target=spmm.Continuation(max_new_tokens=8), method="gradient").continuation
    words = [sample.split("-")[-1] for sample in batch.ids]
    masks = batch.metric_kwargs["mask"].cpu()
    columns = 1 + len(words)
    figure, axes = plt.subplots(len(METHODS), columns, figsize=(1.6 * columns, 1.65 * len(METHODS) + 0.4),
                                squeeze=False, layout="constrained")
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    true_caption = scenes.captions[0]
    for row, (title, attributions) in enumerate(maps.items()):
        axes[row, 0].imshow(to_display(batch.inputs[0]))
        axes[row, 0].set_ylabel(title, fontsize=8)
        if row == 0:
            axes[row, 0].set_title(f"“{true_caption}”\nmodel: “{greedy.strip()}”", fontsize=6)
        for column, word in enumerate(words, start=1):
            heat = absolute_heatmap(attributions[column - 1])
            relevance = attributions[column - 1].abs().sum(0)
            inside = float((relevance * masks[column - 1]).sum() / relevance.sum().clamp_min(1e-12))
            axes[row, column].imshow(heat, cmap="inferno", vmin=0, vmax=1)
            axes[row, column].contour(masks[column - 1].float().numpy(), levels=[0.5], colors="cyan", linewidths=0.6)
            axes[row, column].set_title(f"{word}: {inside:.2f} in mask", fontsize=6.5)
    figure.suptitle("shapes-captioner: one map per word naming an object (outline: its mask)", fontsize=8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=90)
    plt.close(figure)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
