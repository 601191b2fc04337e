"""``spmm explain``, ``spmm compare`` and ``spmm counterfactual`` for images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from spmm.errors import SpmmInputError
from spmm.methods.registry import list_methods

DEFAULT_MODEL = "tf_efficientnet_lite0"


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"torchvision/timm model name (default: the embedded {DEFAULT_MODEL})")
    parser.add_argument("--weights", default=None, help="local checkpoint (.pth/.pt/.safetensors) for --model")
    parser.add_argument("--out", default="spmm-out", help="output folder (default: ./spmm-out)")


def register(subparsers: argparse._SubParsersAction) -> None:
    explain = subparsers.add_parser("explain", help="explain image classifications, one figure per image")
    explain.add_argument("images", nargs="+", help="image files")
    _model_arguments(explain)
    explain.add_argument("--method", default="soft_pullback", help="attribution method (see spmm.list_methods())")
    explain.add_argument("--target", default="top1", help="top1 (default), a class index or an ImageNet class name")
    explain.add_argument("--json", action="store_true", help="print one JSON object per image")
    explain.set_defaults(func=run_explain)

    compare = subparsers.add_parser("compare", help="one image explained by several methods, side by side")
    compare.add_argument("image", help="image file")
    _model_arguments(compare)
    compare.add_argument("--methods", default="gradient,smoothgrad,integrated_gradients,soft_pullback,pullback_ascent",
                         help="comma-separated method names")
    compare.add_argument("--target", default="top1", help="top1 (default), a class index or an ImageNet class name")
    compare.add_argument("--kind", default="signed", choices=("signed", "absolute", "input_x_attribution"),
                         help="how maps are drawn")
    compare.set_defaults(func=run_compare)

    counterfactual = subparsers.add_parser("counterfactual", help="PullbackAscent towards a class: x, x+δ and δ per step")
    counterfactual.add_argument("image", help="image file")
    _model_arguments(counterfactual)
    counterfactual.add_argument("--target", required=True, help="class index or ImageNet class name to move towards")
    counterfactual.add_argument("--steps", type=int, default=5, help="ascent steps K (default 5)")
    counterfactual.add_argument("--step-size", type=float, default=20.0, help="L2 step size α in [−1,1] units (default 20)")
    counterfactual.set_defaults(func=run_counterfactual)


def _check_methods(methods: list[str]) -> None:
    unknown = [m for m in methods if m not in list_methods()]
    if unknown:
        raise SpmmInputError(f"unknown method(s) {', '.join(unknown)}; available: {', '.join(list_methods())}")


def _load(args: argparse.Namespace):
    from spmm.adapters.vision import load_model

    return load_model(args.model, weights=args.weights)


def _predictions(logits: torch.Tensor, names: list[str], top: int = 5) -> list[dict]:
    probabilities = logits.softmax(-1)
    values, indices = probabilities.topk(min(top, probabilities.shape[-1]))
    return [{"index": int(i), "name": names[int(i)] if int(i) < len(names) else str(int(i)), "probability": float(p)}
            for p, i in zip(values, indices)]


def run_explain(args: argparse.Namespace) -> int:
    from spmm.adapters.vision import explain_image, imagenet_class_names
    from spmm.modalities.image import load_images, save_explanation_panel

    _check_methods([args.method])
    images = load_images(args.images)
    model = _load(args)
    explanation = explain_image(model, images, args.target, args.method, seed=0)
    names = imagenet_class_names()
    indices = explanation.target.indices
    out = Path(args.out)
    for row, source in enumerate(args.images):
        target = int(indices[row])
        target_name = names[target] if target < len(names) else str(target)
        figure = save_explanation_panel(
            images[row], explanation.attributions[row], out / f"{Path(source).stem}_{args.method}.png",
            title=f"{Path(source).name}: {args.method} for '{target_name}'",
        )
        predictions = _predictions(explanation.output[row], names)
        if args.json:
            print(json.dumps({
                "image": str(source), "model": args.model, "method": args.method,
                "predictions": predictions, "target": {"index": target, "name": target_name},
                "files": [str(figure)],
            }))
        else:
            top = predictions[0]
            print(f"{source}: predicted {top['name']} ({top['probability']:.1%}); {args.method} for "
                  f"'{target_name}' -> {figure}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from spmm.adapters.vision import explain_image, imagenet_class_names
    from spmm.modalities.image import load_images, save_comparison_grid

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise SpmmInputError("--methods is empty")
    _check_methods(methods)
    images = load_images([args.image])
    model = _load(args)
    maps, target = {}, None
    for method in methods:
        explanation = explain_image(model, images, args.target, method, seed=0)
        maps[method] = explanation.attributions
        target = int(explanation.target.indices[0])
    names = imagenet_class_names()
    figure = save_comparison_grid(
        images, maps, Path(args.out) / f"{Path(args.image).stem}_compare.png",
        row_titles=[names[target] if target < len(names) else str(target)], kind=args.kind,
        title=f"{Path(args.image).name} — {args.model}",
    )
    print(figure)
    return 0


def run_counterfactual(args: argparse.Namespace) -> int:
    from spmm.adapters.vision import class_index, explain_image, imagenet_class_names
    from spmm.modalities.image import load_images, save_counterfactual_grid

    if args.steps < 1:
        raise SpmmInputError(f"--steps must be at least 1, got {args.steps}")
    images = load_images([args.image])
    model = _load(args)
    target = class_index(args.target)
    explanation = explain_image(model, images, target, "pullback_ascent", steps=args.steps, step_size=args.step_size)
    names = imagenet_class_names()
    label = names[target]
    scores = explanation.extras["step_scores"][:, 0]
    figure = save_counterfactual_grid(
        {label: explanation.extras["trajectory"][:, 0]}, Path(args.out) / f"{Path(args.image).stem}_to_{target}.png",
        step_scores={label: scores}, title=f"{Path(args.image).name}: PullbackAscent towards '{label}'",
    )
    print(f"'{label}' logit per step: {', '.join(f'{float(s):.2f}' for s in scores)}")
    print(figure)
    return 0
