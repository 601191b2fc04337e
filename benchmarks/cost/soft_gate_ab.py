"""SoftPullback / gradient time with the fused soft ReLU gate next to the previous formula, in one
process with the three runs interleaved (so that the machine's drift cancels out of the ratios).

    OMP_NUM_THREADS=1 python benchmarks/cost/soft_gate_ab.py [--models resnet50,vgg11_bn] [--repeats 15]

"previous" is the ReLU gate as it was before the fusion: Φ(x/T) = erfc(−x/(T√2))/2, evaluated
on the recomputed (or saved) input, then multiplied by the incoming gradient; "fused" is
``spmm.rules.gates.SoftStep``: the batch-norm recompute with the 1/(T√2) scale folded in, erf,
then grad·(1 + erf)/2.  CPU seconds of this thread per explanation (forward + backward), medians.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torchvision

import spmm
import spmm.rules.gates as gates

_FUSED_RELU_GATE = gates.relu_gate


def previous_relu_gate(temperature: float) -> gates.Gate:
    """The ReLU gate before the fusion (a plain function, so the backward takes the unfused path)."""
    return lambda x: (x * (-1.0 / (math.sqrt(2.0) * temperature))).erfc_().mul_(0.5)


def explanation_seconds(model: torch.nn.Module, x: torch.Tensor, method: str) -> float:
    """CPU seconds of one input gradient of logit 1: ``gradient``, ``previous`` or ``fused`` SP."""
    gates.relu_gate = previous_relu_gate if method == "previous" else _FUSED_RELU_GATE
    try:
        x = x.clone().requires_grad_(True)
        start = time.thread_time()
        with torch.enable_grad() if method == "gradient" else spmm.pullback_mode():
            out = model(x)
        torch.autograd.grad(out[:, 1].sum(), x)
        return time.thread_time() - start
    finally:
        gates.relu_gate = _FUSED_RELU_GATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vgg11_bn", help="torchvision model names, comma-separated")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    methods = ("gradient", "previous", "fused")
    print(f"batch {args.batch}, {args.threads} thread(s), torch {torch.__version__}; CPU s per explanation, "
          f"median of {args.repeats} interleaved runs")
    print("\n| model | gradient s | SP, previous gate s | ratio | SP, fused gate s | ratio |\n|---|---|---|---|---|---|")
    for name in args.models.split(","):
        model: torch.nn.Module = getattr(torchvision.models, name)().eval()
        x = torch.randn(args.batch, 3, 224, 224)
        for method in methods:
            explanation_seconds(model, x, method)  # warm-up
        times = {method: [] for method in methods}
        for _ in range(args.repeats):
            for method in methods:
                times[method].append(explanation_seconds(model, x, method))
        grad, previous, fused = (statistics.median(times[method]) for method in methods)
        print(f"| {name} | {grad:.3f} | {previous:.3f} | {previous / grad:.2f}× | {fused:.3f} | {fused / grad:.2f}× |",
              flush=True)


if __name__ == "__main__":
    main()
