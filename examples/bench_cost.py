"""Cost of SoftPullback relative to the plain gradient (time and memory), on CPU or a GPU.

For each model the same batch is explained by the target logit's input gradient
with and without the pullback mode.  Time: median of ``--repeats`` runs, the two
methods interleaved so that machine load affects both alike.  Memory: the bytes
autograd saves for the backward pass (exact, from saved-tensor hooks) and the
peak resident memory of a fresh process running one explanation (Linux VmHWM), or on a
GPU the peak of allocated GPU memory during one explanation.

    python examples/bench_cost.py                    # CPU; prints a Markdown table
    python examples/bench_cost.py --device cuda      # GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch

import spmm

MODELS = ("resnet50", "vit_small_patch16_224", "bert-base (random)")


def build(name: str, batch: int) -> tuple[torch.nn.Module, torch.Tensor, Callable]:
    """(model, inputs, target) for a benchmark model, random-initialised (no download)."""
    torch.manual_seed(0)
    if name == "resnet50":
        import torchvision

        return torchvision.models.resnet50().eval(), torch.rand(batch, 3, 224, 224) * 2 - 1, 1
    if name == "vit_small_patch16_224":
        import timm

        model = timm.create_model("vit_small_patch16_224", pretrained=False).eval()
        return model, torch.rand(batch, 3, 224, 224) * 2 - 1, 1
    if name == "bert-base (random)":
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(num_labels=2, attn_implementation="sdpa")  # BERT-base sizes: 12 x 768
        model = BertForSequenceClassification(config).eval()
        embeds = torch.randn(batch, 128, config.hidden_size) * 0.5

        def forward(x: torch.Tensor) -> torch.Tensor:
            return model(inputs_embeds=x).logits

        return _Callable(model, forward), embeds, 1
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


class _Callable(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, forward: Callable) -> None:
        super().__init__()
        self.inner, self._forward = inner, forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)


def input_gradient(model, x, target, pullback: bool) -> torch.Tensor:
    """One forward and one backward of the summed target logits; returns d/dx."""
    x = x.detach().requires_grad_(True)
    with spmm.pullback_mode() if pullback else torch.enable_grad():
        logits = model(x)
    (grad,) = torch.autograd.grad(logits[:, target].sum(), x)
    if grad.is_cuda:
        torch.cuda.synchronize(grad.device)
    return grad


def peak_gpu(model, x, target, pullback: bool) -> int:
    """Peak growth (bytes) of allocated GPU memory during one explanation."""
    torch.cuda.synchronize(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    before = torch.cuda.memory_allocated(x.device)
    input_gradient(model, x, target, pullback)
    return torch.cuda.max_memory_allocated(x.device) - before


def saved_bytes(model, x, target, pullback: bool) -> int:
    """Bytes autograd keeps for the backward pass of one explanation (each storage counted once)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    x = x.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with spmm.pullback_mode() if pullback else torch.enable_grad():
            model(x)
    return sum(storages.values())


def peak_rss_child(name: str, batch: int, pullback: bool) -> int:
    """Peak RSS growth (bytes) of a fresh process during one explanation."""
    code = (
        "import sys, json; sys.argv=['x']; import examples.bench_cost as b;"
        f"print(json.dumps(b.measure_peak({name!r}, {batch}, {pullback})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_peak(name: str, batch: int, pullback: bool) -> int:
    model, x, target = build(name, batch)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    input_gradient(model, x, target, pullback)
    return (_status_kib("VmHWM") - before) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--time-only", action="store_true", help="skip the memory measurements")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU seconds (all threads) instead of wall-clock, on a shared machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = time.process_time if args.cpu_time else time.perf_counter
    rows = []
    for name in args.models.split(","):
        model, x, target = build(name, args.batch)
        model, x = model.to(device), x.to(device)
        times: dict[bool, list[float]] = {False: [], True: []}
        for pullback in (False, True):  # warm-up
            input_gradient(model, x, target, pullback)
        for _ in range(args.repeats):
            for pullback in (False, True):
                start = clock()
                input_gradient(model, x, target, pullback)
                times[pullback].append(clock() - start)
        t_grad, t_sp = statistics.median(times[False]), statistics.median(times[True])
        saved_grad = saved_sp = peak_grad = peak_sp = float("nan")
        if not args.time_only:
            saved_grad, saved_sp = saved_bytes(model, x, target, False), saved_bytes(model, x, target, True)
            if device.type == "cuda":
                peak_grad, peak_sp = peak_gpu(model, x, target, False), peak_gpu(model, x, target, True)
            else:
                peak_grad = peak_rss_child(name, args.batch, False)
                peak_sp = peak_rss_child(name, args.batch, True)
        rows.append((name, t_grad, t_sp, saved_grad, saved_sp, peak_grad, peak_sp))
        print(f"done {name}", file=sys.stderr)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    seconds = "CPU seconds" if args.cpu_time else "wall-clock seconds"
    print(f"torch {torch.__version__}, {where}, batch {args.batch}, median of {args.repeats} runs, {seconds}\n")
    peak = "peak GPU memory growth" if device.type == "cuda" else "peak RSS growth"
    print("| model | gradient s | SoftPullback s | time ratio | saved for backward (grad → SP) | ratio "
          f"| {peak} (grad → SP) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    mib = 2**20
    for name, tg, ts, sg, ss, pg, ps in rows:
        print(f"| {name} | {tg:.3f} | {ts:.3f} | {ts / tg:.2f}× | {sg / mib:.0f} → {ss / mib:.0f} MiB | "
              f"{ss / sg:.2f}× | {pg / mib:.0f} → {ps / mib:.0f} MiB | {ps / pg:.2f}× |")


if __name__ == "__main__":
    main()
