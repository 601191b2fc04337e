"""Where SoftPullback's extra time goes: CPU self time per explanation of the busiest ops, gradient vs SP.

Uses the models, inputs and rule sets of ``examples/bench_cost.py`` (random-initialised, nothing downloaded)
and ``torch.profiler``; prints one Markdown table per method.

    OMP_NUM_THREADS=1 python benchmarks/cost/profile_ops.py --model resnet50 [--threads 1] [--batch 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import bench_cost  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", choices=bench_cost.MODELS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--explanations", type=int, default=3, help="explanations profiled per method")
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, x, target = bench_cost.build(args.model, args.batch)
    mode = bench_cost.rules_mode(args.model, model)
    for pullback in (None, mode, None, mode):  # warm-up
        bench_cost.input_gradient(model, x, target, pullback)
    print(f"{args.model}, batch {args.batch}, {args.threads} thread(s), torch {torch.__version__}; "
          f"CPU self time per explanation (mean of {args.explanations})")
    for label, pullback in (("gradient", None), ("SoftPullback", mode)):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.explanations):
                bench_cost.input_gradient(model, x, target, pullback)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events) / args.explanations / 1e3
        print(f"\n{label}: {total:.0f} ms per explanation\n\n| op | calls | self ms |\n|---|---|---|")
        for event in events[: args.rows]:
            print(f"| {event.key} | {event.count // args.explanations} | "
                  f"{event.self_cpu_time_total / args.explanations / 1e3:.1f} |")


if __name__ == "__main__":
    main()
