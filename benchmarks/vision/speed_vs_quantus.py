"""Wall time of each metric, ours vs Quantus 0.6.0, on the same Lite0 inputs, labels and
attributions (gradient); prints a markdown table and writes it to --out.

Usage: OMP_NUM_THREADS=1 python benchmarks/vision/speed_vs_quantus.py --data DIR --n 4 --out speed.md
       python benchmarks/vision/speed_vs_quantus.py --data DIR --n 16 --device cuda --samples 10 --draws 5 --out speed.md
Values are compared where both compute the same thing (constant baselines, the same noise);
Infidelity, FaithCorr and RandomLogit differ by design (see tests/metrics/test_quantus_agreement.py)
and are timed only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import spmm
from spmm.adapters.vision import load_efficientnet_lite0
from spmm.modalities.image.bench import image_batches, labelled_images
from spmm.metrics import (
    DeletionAUC, FaithfulnessCorrelation, FaithfulnessEstimate, Focus, Infidelity, MaxSensitivity, MonotonicityCorrelation,
    FeatureGroups, RandomLogit, explainer, square_patches,
)


def timed(fn, device: torch.device, repeats: int = 1):
    """Fastest of ``repeats`` calls of ``fn`` (seconds) and the last call's values (flat array)."""
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        value = fn()
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, np.asarray(value, dtype=float).reshape(-1)


def main() -> None:
    import quantus

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--out", default="speed.md")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both libraries run there)")
    parser.add_argument("--samples", type=int, default=2, help="MonotonicityCorrelation samples per step")
    parser.add_argument("--sensitivity-samples", type=int, default=3, help="MaxSensitivity samples")
    parser.add_argument("--draws", type=int, default=1, help="Infidelity draws")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time every metric this many times, both libraries, and keep the fastest (the first call of "
                             "each pays one-off costs such as loading GPU kernels for new shapes)")
    parser.add_argument("--allow-tf32", action="store_true",
                        help="keep PyTorch's default TF32 convolutions on GPUs (faster; values then differ ~1e-3)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.allow_tf32 = args.allow_tf32
    device = torch.device(args.device)
    model = load_efficientnet_lite0().to(device)
    files, classes = labelled_images(args.data, args.n)
    batch = image_batches(model, files, classes, args.n)[0]
    x, y = batch.inputs, batch.targets
    grad = explainer("gradient")
    a = a_raw = grad(model, x, y)
    # warm-up (cuDNN autotuning, lazy initialisation) so that neither library pays it
    with torch.no_grad():
        model(x)
    shape = x.shape[1:]
    # Quantus ranks single elements (channel values), so the comparison does too: one group per element
    elements = FeatureGroups(torch.arange(int(np.prod(shape))).view(*shape), int(np.prod(shape)))
    p56, p112 = square_patches(shape, 56), square_patches(shape, 112)
    xn, yn, an, a_raw_n = x.cpu().numpy(), y.cpu().numpy(), a.cpu().numpy(), a_raw.cpu().numpy()
    common = {"disable_warnings": True, "display_progressbar": False}
    q_kwargs = {"model": model, "x_batch": xn, "y_batch": yn, "a_batch": an, "device": str(device)}
    explain_kwargs = {"explain_func": spmm.quantus_explain_func, "explain_func_kwargs": {"method": "gradient"}}
    generator = torch.Generator().manual_seed(3)

    def same_noise(arr, indices, **kwargs):
        noise = (torch.rand((arr.shape[0], 1, *shape), generator=generator) * 2 - 1) * 0.02
        return arr + noise.reshape(arr.shape[0], -1).numpy()

    quadrants = torch.tensor([[1, 1, 0, 0]] * len(y), dtype=torch.bool, device=device)
    # our MaxSensitivity draws its noise on the device; Quantus's perturb_func above draws on the CPU
    same_noise_possible = device.type == "cpu"
    mono, sens, draws = args.samples, args.sensitivity_samples, args.draws
    cases = [
        ("faithfulness_estimate (3136 elements/step, baseline 0)", True,
         lambda: FaithfulnessEstimate(groups_per_step=3136, baseline=0.0)(model, x, y, a, groups=elements).scores,
         lambda: quantus.FaithfulnessEstimate(features_in_step=3136, perturb_baseline=0.0, abs=True, normalise=False, **common)(**q_kwargs)),
        (f"monotonicity_correlation ({mono} samples, baseline 0)", True,
         lambda: MonotonicityCorrelation(groups_per_step=3136, samples=mono, baseline=0.0)(model, x, y, a, groups=elements).scores,
         lambda: [quantus.MonotonicityCorrelation(features_in_step=3136, nr_samples=mono, perturb_baseline=0.0, eps=1e-12,
                                                  abs=True, normalise=False, **common)(
             **{**q_kwargs, "x_batch": xn[i:i + 1], "y_batch": yn[i:i + 1], "a_batch": an[i:i + 1]})[0]
             for i in range(len(y))]),
        ("deletion curve / PixelFlipping (3136 elements/step)", True,
         lambda: DeletionAUC(groups_per_step=3136)(model, x, y, a, groups=elements).extras["curve"][:, 1:].flatten(),
         lambda: quantus.PixelFlipping(features_in_step=3136, perturb_baseline=0.0, normalise=False, **common)(**q_kwargs)),
        (f"max_sensitivity ({sens} samples{', same noise' if same_noise_possible else ''})",
         True if same_noise_possible else "our noise is drawn on the GPU",
         lambda: MaxSensitivity(samples=sens, radius=0.02, seed=3)(model, x, y, a_raw, explain_fn=grad).scores,
         lambda: quantus.MaxSensitivity(nr_samples=sens, perturb_func=same_noise, normalise=False, abs=False, **common)(
             **{**q_kwargs, "a_batch": a_raw_n}, **explain_kwargs)),
        ("focus (quadrants)", True,
         lambda: Focus(times_input=False)(model, x, y, a, groups=p112, target_groups=quadrants).scores,
         lambda: quantus.Focus(normalise=False, **common)(**q_kwargs, custom_batch=[(1, 1, 0, 0)] * len(y))),
        (f"infidelity (112+56 patches, {draws} draw(s)) — differs by design", False,
         lambda: Infidelity(draws=draws)(model, x, y, a, groups=[p112, p56]).scores,
         lambda: quantus.Infidelity(perturb_patch_sizes=[112, 56], n_perturb_samples=draws, perturb_baseline="uniform", **common)(**q_kwargs)),
        ("faithfulness_correlation — ours 16 patches, Quantus 16 random subsets", False,
         lambda: FaithfulnessCorrelation()(model, x, y, a, groups=p56).scores,
         lambda: quantus.FaithfulnessCorrelation(nr_runs=16, subset_size=3136, perturb_baseline=0.0, abs=True, normalise=False,
                                                 return_aggregate=False, **common)(**q_kwargs)),
        ("random_logit (1000 classes) — random class differs", False,
         lambda: RandomLogit()(model, x, y, a_raw, explain_fn=grad).scores,
         lambda: quantus.RandomLogit(num_classes=1000, similarity_func=quantus.similarity_func.correlation_pearson, normalise=False,
                                     **common)(**{**q_kwargs, "a_batch": a_raw_n}, **explain_kwargs)),
    ]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    precision = "TF32 convolutions" if args.allow_tf32 and device.type == "cuda" else "strict fp32"
    lines = [f"Images: {len(y)} (Lite0, 224×224, gradient attributions), {where}, {precision}, "
             f"fastest of {args.repeats} run(s) per metric and library.", "",
             "| metric | ours (s) | Quantus (s) | speed-up | max abs difference |", "|---|---|---|---|---|"]
    for name, comparable, ours_fn, theirs_fn in cases:
        ours_time, ours = timed(ours_fn, device, args.repeats)
        theirs_time, theirs = timed(theirs_fn, device, args.repeats)
        diff = f"{np.nanmax(np.abs(ours - theirs)):.1e}" if comparable is True else f"n/a ({comparable or 'different definition'})"
        lines.append(f"| {name} | {ours_time:.2f} | {theirs_time:.2f} | {theirs_time / ours_time:.1f}× | {diff} |")
        print(lines[-1], flush=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
