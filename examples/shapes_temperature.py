"""Temperature study on synthetic shapes: SoftPullback's mass accuracy against the rule temperatures.

    python examples/shapes_temperature.py --models shapes-resnet,shapes-vgg,shapes-vit --n 200 \
        --out results/shapes-temperature --figure docs/shapes_temperature.png

For every model and every rule family it uses (ReLU and max-pool in the CNNs; GELU and attention in
the ViT, found with :func:`spmm.audit`), one family's temperature is swept while the others keep
the model's rule set (SPEC §2 defaults: ReLU 0.6, max-pool 0.3, GELU 1, attention 1); T = 0 is the
hard gate (for ReLU and max-pool: the plain gradient through that family).  Each point is the mean
relevance mass accuracy (and mask AUROC) of SoftPullback on the class object of the scenes,
explaining the label.

Per-layer variant ("adaptive temperatures", the paper's future work), for ReLU and max-pool: the
i-th op of the family in the forward pass gets T_i = τ·σ_i, σ_i the standard deviation of that op's
input over the tuning scenes, so every layer is softened relative to its own activation scale; τ
is swept.  Both the best global T and the best τ are picked on tuning scenes (``--tune-seed``) and
reported on other test scenes (``--seed``), with paired bootstrap CIs on the test scenes.
Writes ``curves.csv`` (every point on both splits), ``summary.json`` / ``summary.md`` and the figure.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

import spmm
from spmm.metrics import MaskAUROC, MassAccuracy, paired_bootstrap_ci
from spmm.mode import PullbackMode
from spmm.modalities.image.bench import shapes_batches
from spmm.rules import registry
from spmm.ruleset import RuleSet

GRIDS = {
    "relu": (0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0),
    "max_pool": (0.0, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0),
    "gelu": (0.0, 0.1, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0, 5.0),
    "attention": (0.1, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0, 5.0),
}
"""Global temperatures swept per family (0 = hard gate; attention cannot be 0)."""
SCALES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
"""τ of the per-layer variant T_i = τ·σ_i."""
PER_LAYER = ("relu", "max_pool")


class LayerTemperatures(PullbackMode):
    """The pullback mode of ``rules`` with one rule ``family``'s temperature set per op call: the
    i-th op of that family in a forward pass gets ``schedule[i]``.  Without a schedule it keeps
    the rules' temperature and records each call's input standard deviation in ``spreads``."""

    def __init__(self, rules: RuleSet, family: str, schedule: Sequence[float] | None = None) -> None:
        super().__init__(rules.temperatures, rules.module_rules)
        self.base, self.family, self.schedule = rules.temperatures, family, schedule
        self.calls, self.spreads = 0, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        rule = registry.OP_RULES.get(func)
        if rule is not None and rule.temperature == self.family and args and isinstance(args[0], Tensor) \
                and args[0].requires_grad and torch.is_grad_enabled():
            if self.schedule is None:
                self.spreads.append(float(args[0].detach().double().std()))
            else:
                self.temperatures = self.base.updated({self.family: float(self.schedule[self.calls])})
            self.calls += 1
        return super().__torch_function__(func, types, args, kwargs)


def soft_pullback(model: torch.nn.Module, x: Tensor, targets: Tensor, mode: PullbackMode) -> Tensor:
    """d logit[target] / d x under ``mode``: (B, 3, H, W)."""
    x = x.detach().clone().requires_grad_(True)
    with mode:
        logits = model(x)
    grad, = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), x)
    return grad


def families(model: spmm.Explainable, x: Tensor) -> list[str]:
    """The temperature families of the rules that fire in ``model`` (in GRIDS order)."""
    report = spmm.audit(model.model, x[:1], temperatures=model.rules.temperatures,
                        module_rules=model.rules.for_model(model.model).module_rules)
    fired = {rule.temperature for rule in registry.list_rules() if rule.name in set(report.handled.values())}
    return [family for family in GRIDS if family in fired]


def scores(model: torch.nn.Module, batches: list, make_mode) -> tuple[np.ndarray, np.ndarray]:
    """Per-scene mass accuracy and mask AUROC of SoftPullback under ``make_mode()``."""
    mass, auroc = [], []
    for batch in batches:
        grad = soft_pullback(model, batch.inputs, batch.targets, make_mode())
        mask = batch.metric_kwargs["mask"]
        mass.append(MassAccuracy()(None, batch.inputs, batch.targets, grad, mask=mask).scores)
        auroc.append(MaskAUROC()(None, batch.inputs, batch.targets, grad, mask=mask).scores)
    return torch.cat(mass).numpy(), torch.cat(auroc).numpy()


def layer_spreads(model: torch.nn.Module, batches: list, rules: RuleSet, family: str) -> np.ndarray:
    """σ_i of every op of ``family`` over the scenes of ``batches`` (mean of per-batch stds)."""
    per_batch = []
    for batch in batches:
        mode = LayerTemperatures(rules, family)
        soft_pullback(model, batch.inputs, batch.targets, mode)
        per_batch.append(mode.spreads)
    return np.mean(np.array(per_batch), axis=0)


def study(name: str, args: argparse.Namespace) -> tuple[list[dict], dict]:
    weights = args.weights_dir / f"{name.replace('-', '_')}.safetensors" if args.weights_dir else None
    model = spmm.load(name, **({"weights": weights} if weights else {}))
    rules = model.rules.for_model(model.model)
    splits = {split: shapes_batches(model.model, args.n, args.batch_size, seed, model.modality.size)
              for split, seed in (("tune", args.tune_seed), ("test", args.seed))}
    points, per_scene = [], {}
    found = families(model, splits["test"][0].inputs)
    for family in found:
        settings = [("global", t, lambda t=t: rules.updated({family: t}).mode()) for t in GRIDS[family]]
        if family in PER_LAYER:
            spreads = layer_spreads(model.model, splits["tune"], rules, family)
            settings += [("per_layer", s, lambda s=s: LayerTemperatures(rules, family, s * spreads)) for s in SCALES]
        for variant, value, make_mode in settings:
            for split, batches in splits.items():
                mass, auroc = scores(model.model, batches, make_mode)
                per_scene[(family, variant, value, split)] = mass
                points.append({"model": name, "family": family, "default": getattr(rules.temperatures, family),
                               "variant": variant, "value": value, "split": split, "mass_accuracy": float(mass.mean()), "mask_auroc": float(auroc.mean())})
    summary = {}
    table = pd.DataFrame(points)
    for family in found:
        default = getattr(rules.temperatures, family)
        if default not in GRIDS[family]:
            continue
        entry = {"default": default, "test_mass_default": float(per_scene[(family, "global", default, "test")].mean())}
        for variant in ("global", "per_layer"):
            tuned = table[(table.family == family) & (table.variant == variant) & (table.split == "tune")]
            if tuned.empty:
                continue
            best = float(tuned.loc[tuned.mass_accuracy.idxmax(), "value"])
            test = per_scene[(family, variant, best, "test")]
            low, high = paired_bootstrap_ci(test, per_scene[(family, "global", default, "test")], seed=args.seed)
            entry[variant] = {"best_on_tune": best, "test_mass": float(test.mean()),
                              "minus_default": float((test - per_scene[(family, "global", default, "test")]).mean()),
                              "ci": [low, high]}
        summary[family] = entry
    return points, summary


def plot(points: pd.DataFrame, path: Path) -> None:
    """Test-scene mass accuracy: global T per family (top row, ★ = the rule set's default) and the
    per-layer scale τ (bottom row), one column per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = points[points.split == "test"]
    models = list(dict.fromkeys(test.model))
    figure, axes = plt.subplots(2, len(models), figsize=(4.2 * len(models), 6.4), squeeze=False, layout="constrained")
    for column, name in enumerate(models):
        for row, variant in enumerate(("global", "per_layer")):
            axis = axes[row, column]
            rows_ = test[(test.model == name) & (test.variant == variant)]
            for family, rows in rows_.groupby("family", sort=False):
                shown = axis.plot(rows.value.clip(lower=0.01), rows.mass_accuracy, "o-", label=family, markersize=3)
                default = float(rows["default"].iloc[0])
                at = rows[rows.value == default]
                if variant == "global" and not at.empty:
                    axis.plot([max(default, 0.01)], at.mass_accuracy, "*", color=shown[0].get_color(), markersize=12)
            axis.set_xscale("log")
            axis.grid(alpha=0.3)
            if rows_.empty:
                axis.set_axis_off()
                continue
            axis.legend(fontsize=8)
            axis.set_title(f"{name}: {'global T' if variant == 'global' else 'per-layer T_i = τ·σ_i'}", fontsize=9)
            axis.set_xlabel("T (0 drawn at 0.01)" if variant == "global" else "τ")
        axes[0, column].set_ylabel("mass accuracy (test scenes)")
        axes[1, column].set_ylabel("mass accuracy (test scenes)")
    figure.suptitle("SoftPullback mass accuracy on the class object vs rule temperature (★ = default)", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def markdown(summary: dict) -> str:
    lines = ["| model | rule | default T: test mass | best global T (tuned) : test mass, Δ vs default [95% CI] | "
             "best per-layer τ (tuned): test mass, Δ vs default [95% CI] |", "|---|---|---|---|---|"]
    for name, families_ in summary.items():
        for family, entry in families_.items():
            cells = []
            for variant in ("global", "per_layer"):
                if variant not in entry:
                    cells.append("–")
                    continue
                v = entry[variant]
                cells.append(f"{v['best_on_tune']:g}: {v['test_mass']:.3f}, {v['minus_default']:+.3f} "
                             f"[{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}]")
            lines.append(f"| {name} | {family} | {entry['default']:g}: {entry['test_mass_default']:.3f} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="shapes-resnet,shapes-vgg,shapes-vit", help="comma-separated model specs")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder of shapes_<arch>.safetensors checkpoints (default: the shipped weights)")
    parser.add_argument("--n", type=int, default=200, help="scenes per split")
    parser.add_argument("--tune-seed", type=int, default=3, help="seed of the scenes the best T and τ are picked on")
    parser.add_argument("--seed", type=int, default=2, help="seed of the test scenes (training used seed 1)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("results/shapes-temperature"))
    parser.add_argument("--figure", type=Path, default=None, help="PNG of the curves (default: OUT/temperature.png)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    points, summary = [], {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model_points, summary[name] = study(name, args)
        points += model_points
        pd.DataFrame(points).to_csv(args.out / "curves.csv", index=False)
    table = pd.DataFrame(points)
    plot(table, args.figure or args.out / "temperature.png")
    record = {"command": {k: str(v) for k, v in vars(args).items()}, "seconds": time.perf_counter() - start,
              "torch": torch.__version__, "summary": summary}
    (args.out / "summary.json").write_text(json.dumps(record, indent=2))
    text = markdown(summary)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
