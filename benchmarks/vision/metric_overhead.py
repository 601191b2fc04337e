"""Time the ranking metrics spend outside the model: FaithfulnessEstimate, MonotonicityCorrelation
and the deletion curve on random 3×224×224 inputs with one group per element (as in
speed_vs_quantus.py) and a trivial model (average pooling + one linear layer), so that what is
timed is mask building, baselines, sorting and bookkeeping.

Usage: python benchmarks/vision/metric_overhead.py [--n 16] [--threads 2] [--repeats 3]
Prints a markdown table (fastest of --repeats calls per metric, after one warm-up call).
"""

from __future__ import annotations

import argparse
import time

import torch

from spmm.metrics import DeletionAUC, FaithfulnessEstimate, FeatureGroups, MonotonicityCorrelation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=16, help="images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    shape = (3, 224, 224)
    x = torch.randn((args.n, *shape), generator=generator)
    a = torch.randn((args.n, *shape), generator=generator)
    y = torch.randint(0, 10, (args.n,), generator=generator)
    weight = torch.randn((10, 3 * 8 * 8), generator=generator) * 0.01

    def model(z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(z, 8).flatten(1) @ weight.T

    count = x[0].numel()
    elements = FeatureGroups(torch.arange(count).view(*shape), count)
    metrics = {
        "faithfulness_estimate (3136 elements/step)": FaithfulnessEstimate(groups_per_step=3136, baseline=0.0, chunk=64),
        "monotonicity_correlation (3136 elements/step, 10 samples)": MonotonicityCorrelation(
            groups_per_step=3136, samples=10, baseline=0.0, chunk=64),
        "deletion curve (3136 elements/step)": DeletionAUC(groups_per_step=3136, chunk=64),
    }
    print(f"{args.n} images, {args.threads} thread(s), trivial model, fastest of {args.repeats}\n")
    print("| metric | seconds |\n|---|---|")
    for name, metric in metrics.items():
        metric(model, x, y, a, groups=elements)
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            metric(model, x, y, a, groups=elements)
            best = min(best, time.perf_counter() - start)
        print(f"| {name} | {best:.2f} |", flush=True)


if __name__ == "__main__":
    main()
