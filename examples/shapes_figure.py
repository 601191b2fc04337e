"""The ground-truth figure: synthetic scenes, their object masks, four attribution maps and the
PullbackAscent / GradientAscent counterfactual steps towards another class.

    python examples/shapes_figure.py --model shapes-resnet --count 4 --out docs/shapes_grid.png

Columns: the scene (its label), the class-object mask, |attribution| maps (colours summed, scaled
to the 99.5th percentile) of Gradient, SoftPullback, IntegratedGradients and GuidedGradCAM for the
label, then PullbackAscent x_1 … x_K towards class b (the title gives b and the model's
probability of b at each step), its change δ = x_K − x, and GradientAscent's x_K and δ at the same
α and K.  δ panels: grey = 0, colours scaled by max |δ|.  Scenes: the first ``--count`` of seed
``--seed`` that the model classifies correctly, each with a different label; b = the next class.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import spmm
from spmm.modalities.image import absolute_heatmap, perturbation_display, to_display
from spmm.modalities.image.bench import shapes_batches

MAPS = {"Gradient": "gradient", "SoftPullback": "soft_pullback", "IG": "integrated_gradients",
        "GuidedGradCAM": "guided_gradcam"}


def pick_scenes(model: spmm.Explainable, count: int, seed: int, pool: int) -> tuple[torch.Tensor, ...]:
    """Inputs (count, 3, H, W), labels and masks of correctly classified scenes with distinct labels."""
    chosen: dict[int, tuple] = {}
    for batch in shapes_batches(model.model, pool, 32, seed, model.modality.size):
        with torch.no_grad():
            correct = model.model(batch.inputs).argmax(-1) == batch.targets
        for i in range(len(batch.ids)):
            label = int(batch.targets[i])
            if correct[i] and label not in chosen and len(chosen) < count:
                chosen[label] = (batch.inputs[i], batch.targets[i], batch.metric_kwargs["mask"][i])
    if not chosen:
        raise SystemExit(f"the model classifies none of the first {pool} scenes of seed {seed} correctly")
    rows = list(chosen.values())
    return tuple(torch.stack(column) for column in zip(*rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-resnet")
    parser.add_argument("--weights", default=None, help="checkpoint for --model (default: the shipped one)")
    parser.add_argument("--count", type=int, default=4, help="rows (scenes)")
    parser.add_argument("--seed", type=int, default=2, help="scene seed (training used seed 1)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--step-size", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("docs/shapes_grid.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = spmm.load(args.model, **({"weights": args.weights} if args.weights else {}))
    x, labels, masks = pick_scenes(model, args.count, args.seed, pool=200)
    names = model.labels
    towards = (labels + 1) % len(names)
    maps = {title: model.explain(x, target=labels.tolist(), method=method, seed=args.seed).attributions
            for title, method in MAPS.items()}
    ascent = {method: model.explain(x, target=towards.tolist(), method=method, seed=args.seed,
                                    steps=args.steps, step_size=args.step_size)
              for method in ("pullback_ascent", "gradient_ascent")}
    trajectory = ascent["pullback_ascent"].extras["trajectory"]  # (K+1, B, 3, H, W)
    with torch.no_grad():
        probabilities = torch.stack([model.model(step).softmax(-1) for step in trajectory])  # (K+1, B, C)
        ga_final = ascent["gradient_ascent"].extras["trajectory"][-1]
        ga_probability = model.model(ga_final).softmax(-1)

    columns = 2 + len(MAPS) + args.steps + 3
    figure, axes = plt.subplots(len(x), columns, figsize=(1.55 * columns, 1.75 * len(x) + 0.5), squeeze=False,
                                layout="constrained")
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    for row in range(len(x)):
        b = int(towards[row])
        panels = [(to_display(x[row]), f"input: {names[int(labels[row])]}", None),
                  (masks[row].float().cpu().numpy(), "object mask", "gray")]
        panels += [(absolute_heatmap(maps[title][row]), title, "inferno") for title in MAPS]
        panels += [(to_display(trajectory[k, row]), f"PA x{k} p({names[b]})={probabilities[k, row, b]:.2f}", None)
                   for k in range(1, args.steps + 1)]
        panels += [(perturbation_display(trajectory[-1, row] - x[row]), "PA δ", None),
                   (to_display(ga_final[row]), f"GA x{args.steps} p({names[b]})={ga_probability[row, b]:.2f}", None),
                   (perturbation_display(ga_final[row] - x[row]), "GA δ", None)]
        for axis, (image, title, cmap) in zip(axes[row], panels):
            axis.imshow(image, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap else None)
            axis.set_title(title, fontsize=6.5)
    figure.suptitle(f"{args.model}: attributions for the label; ascent (α = {args.step_size:g}, "
                    f"K = {args.steps}) towards the next class", fontsize=9)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    plt.close(figure)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
