"""Backward time of one soft max-pool (``spmm.rules.pooling.soft_max_pool2d_grad``) next to the
max-pool's own backward, on the pools of ResNet (3×3/2, padding 1) and VGG (2×2/2).

    OMP_NUM_THREADS=2 python benchmarks/cost/pool_backward.py [--threads 2]

Run with an older checkout first on ``PYTHONPATH`` to time its implementation the same way.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from spmm.rules.pooling import soft_max_pool2d_grad

POOLS = (  # (input shape, kernel, stride, padding): ResNet50's pool, VGG11's first and third, batch 4
    ((4, 64, 112, 112), 3, 2, 1),
    ((4, 64, 224, 224), 2, 2, 0),
    ((4, 256, 56, 56), 2, 2, 0),
)


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{args.threads} thread(s), torch {torch.__version__}, median of {args.repeats}, ms\n")
    print("| input | kernel/stride/pad | soft spread T = 0.3 | soft spread T = 5 | max-pool's own backward |")
    print("|---|---|---|---|---|")
    for shape, kernel, stride, padding in POOLS:
        x = torch.randn(shape)
        leaf = x.clone().requires_grad_()
        pooled = F.max_pool2d(leaf, kernel, stride, padding)
        grad_out = torch.randn_like(pooled)
        soft = [median_ms(lambda t=t: soft_max_pool2d_grad(x, grad_out, kernel, stride, padding, 1, t), args.repeats)
                for t in (0.3, 5.0)]
        exact = median_ms(lambda: torch.autograd.grad(pooled, leaf, grad_out, retain_graph=True), args.repeats)
        print(f"| {tuple(shape)} | {kernel}/{stride}/{padding} | {soft[0]:.1f} | {soft[1]:.1f} | {exact:.1f} |")


if __name__ == "__main__":
    main()
