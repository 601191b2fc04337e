"""Counterfactuals on synthetic shapes: do PullbackAscent's changes draw on the object, or spray noise?

    python examples/shapes_counterfactual.py --model shapes-resnet --n 200 --out results/shapes-counterfactual

Every scene of class a (the model must predict a, other scenes are left out) is pushed towards a
class b ≠ a drawn per scene from (seed, index), by PullbackAscent and by GradientAscent with the
same step size α and number of steps K (SPEC §3: x_k = clip(x_{k−1} + α·g/‖g‖₂)).  Per scene and
method:

* ``flip``: the model predicts b at x_K;
* ``share_object``: the share of |x_K − x| (summed over colours) on the class object's pixels — the
  relevance mass accuracy of δ = x_K − x (:class:`spmm.metrics.MassAccuracy`); ``share_near`` the
  same on the object dilated by ``--near`` pixels (reshaping an object also adds pixels next to it);
  ``chance``: the object's (dilated object's) share of the image, what evenly spread noise scores;
* ``norm``: ‖x_K − x‖₂; ``flip_step1..K``: the flip after each step.

Equal perturbation norm: both methods take K steps of length α, but clipping to [−1, 1] shortens
them by different amounts, so their δ differ in norm.  Per scene, the longer δ is scaled down to
the norm of the shorter (r = min of the two norms); x + s·δ with s ∈ [0, 1] stays inside [−1, 1]
(a convex combination of x and x_K), so no clipping is needed and both changes have exactly norm
r.  ``flip_equal_norm`` is the flip rate there; the shares are scale-free and need no rescaling.
Writes per-scene rows (``scenes.csv``), the summary with paired bootstrap CIs PA − GA
(``summary.json``, ``summary.md``) and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

import spmm
from spmm.metrics import MassAccuracy, paired_bootstrap_ci
from spmm.modalities.image.bench import shapes_batches

METHODS = ("pullback_ascent", "gradient_ascent")


def other_classes(labels: torch.Tensor, classes: int, seed: int, first: int) -> torch.Tensor:
    """Per scene a class b ≠ label, uniform over the others, drawn from (seed, scene index)."""
    offsets = [int(np.random.default_rng([seed, first + i, 1]).integers(1, classes)) for i in range(len(labels))]
    return (labels + torch.tensor(offsets, device=labels.device)) % classes


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """(B, H, W) bool mask grown by ``pixels`` in every direction (a square structuring element)."""
    if pixels == 0:
        return mask
    return F.max_pool2d(mask[:, None].float(), 2 * pixels + 1, stride=1, padding=pixels)[:, 0] > 0


@torch.no_grad()
def predicted(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(-1)


def scale_to(delta: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """δ (B, ...) scaled per sample to the given L2 ``norm`` (B,) (never scaled up)."""
    current = delta.flatten(1).norm(dim=1)
    factor = (norm / current.clamp_min(1e-12)).clamp(max=1.0)
    return delta * factor.view(-1, *[1] * (delta.dim() - 1))


def run(args: argparse.Namespace) -> pd.DataFrame:
    model = spmm.load(args.model, **({"weights": args.weights} if args.weights else {}))
    classes = len(model.labels)
    rows = []
    for batch in shapes_batches(model.model, args.n, args.batch_size, args.seed, model.modality.size):
        first = int(batch.ids[0].rsplit("-", 1)[1])
        x, labels, mask = batch.inputs, batch.targets, batch.metric_kwargs["mask"]
        towards = other_classes(labels, classes, args.seed, first)
        keep = predicted(model.model, x) == labels
        if not bool(keep.any()):
            continue
        ids = [i for i, k in zip(batch.ids, keep.tolist()) if k]
        x, labels, mask, towards = x[keep], labels[keep], mask[keep], towards[keep]
        near = dilate(mask, args.near)
        deltas, step_flips = {}, {}
        for method in METHODS:
            ex = model.explain(x, target=towards.tolist(), method=method, seed=args.seed,
                               step_size=args.step_size, steps=args.steps)
            deltas[method] = ex.attributions.detach()
            step_flips[method] = [predicted(model.model, x_k) == towards for x_k in ex.extras["trajectory"][1:]]
        radius = torch.minimum(*[d.flatten(1).norm(dim=1) for d in deltas.values()])
        for method, delta in deltas.items():
            share = MassAccuracy()(None, x, towards, delta, mask=mask).scores
            share_near = MassAccuracy()(None, x, towards, delta, mask=near).scores
            flip = predicted(model.model, x + delta) == towards
            flip_equal = predicted(model.model, x + scale_to(delta, radius)) == towards
            for i, sample in enumerate(ids):
                rows.append({
                    "sample": sample, "method": method, "label": int(labels[i]), "towards": int(towards[i]),
                    "flip": float(flip[i]), "flip_equal_norm": float(flip_equal[i]),
                    "norm": float(delta[i].norm()), "equal_norm": float(radius[i]),
                    "share_object": float(share[i]), "share_near": float(share_near[i]),
                    "chance_object": float(mask[i].float().mean()), "chance_near": float(near[i].float().mean()),
                    **{f"flip_step{k}": float(flips[i]) for k, flips in enumerate(step_flips[method], start=1)},
                })
    return pd.DataFrame(rows)


COLUMNS = ("flip", "flip_equal_norm", "share_object", "chance_object", "share_near", "chance_near", "norm")


def summarise(scenes: pd.DataFrame, seed: int) -> dict:
    """Mean per method and paired bootstrap CI of PA − GA for every column."""
    wide = {method: scenes[scenes.method == method].set_index("sample").sort_index() for method in METHODS}
    summary = {"scenes": int(len(wide[METHODS[0]])), "means": {}, "paired": {}}
    for column in COLUMNS:
        summary["means"][column] = {method: float(wide[method][column].mean()) for method in METHODS}
        a, b = wide[METHODS[0]][column].to_numpy(), wide[METHODS[1]][column].to_numpy()
        low, high = paired_bootstrap_ci(a, b, seed=seed)
        summary["paired"][column] = {"mean_diff": float((a - b).mean()), "ci_low": low, "ci_high": high}
    steps = [c for c in scenes.columns if c.startswith("flip_step")]
    summary["flip_by_step"] = {method: [float(wide[method][c].mean()) for c in steps] for method in METHODS}
    return summary


def markdown(summary: dict) -> str:
    lines = [f"| quantity ({summary['scenes']} scenes) | PullbackAscent | GradientAscent | PA − GA [95% CI] |",
             "|---|---|---|---|"]
    for column in COLUMNS:
        means, paired = summary["means"][column], summary["paired"][column]
        lines.append(f"| {column} | {means[METHODS[0]]:.3f} | {means[METHODS[1]]:.3f} | "
                     f"{paired['mean_diff']:+.3f} [{paired['ci_low']:+.3f}, {paired['ci_high']:+.3f}] |")
    for method, rates in summary["flip_by_step"].items():
        lines.append(f"| flip rate after steps 1..K, {method} | " + ", ".join(f"{r:.2f}" for r in rates) + " | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-resnet", help="shapes-resnet, shapes-vgg or shapes-vit")
    parser.add_argument("--weights", default=None, help="checkpoint for --model (default: the shipped one)")
    parser.add_argument("--n", type=int, default=200, help="scenes drawn (misclassified ones are left out)")
    parser.add_argument("--seed", type=int, default=2,
                        help="scene seed and seed of the class draws (training used seed 1)")
    parser.add_argument("--steps", type=int, default=5, help="ascent steps K (SPEC default 5)")
    parser.add_argument("--step-size", type=float, default=20.0, help="step length α (SPEC default 20)")
    parser.add_argument("--near", type=int, default=4, help="dilation (pixels) of the object for share_near")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("results/shapes-counterfactual"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    scenes = run(args)
    scenes.to_csv(args.out / "scenes.csv", index=False)
    summary = {"command": vars(args) | {"out": str(args.out)}, "seconds": time.perf_counter() - start,
               "torch": torch.__version__, **summarise(scenes, args.seed)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    text = markdown(summary)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
