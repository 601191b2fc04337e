"""Cost of SoftPullback relative to the plain gradient (time and memory), eager and compiled, on CPU or a GPU.

For each model the same batch is explained by the target logit's input gradient
with and without the pullback mode (the model family's rule set: vision or text).
Time: median of ``--repeats`` runs, the two methods interleaved so that machine load
affects both alike.  Memory: the activations autograd saves for the backward pass (exact,
from saved-tensor hooks; weights not counted) and the peak resident memory of a fresh process running one
explanation (Linux VmHWM, glibc told to return freed blocks at once: see MMAP_THRESHOLD), or on a GPU the peak of allocated GPU memory during one
explanation.  With ``--compile`` the same two are timed on ``torch.compile(model)``
(compiled once per method before timing; compile time is reported separately).

The decoder row attributes one generated token: a random-initialised Llama (hidden 512,
4 layers) on a 512-token prompt, gradient of the next token's logit (``logits_to_keep=1``)
with respect to the prompt embeddings, batch 1.

    python examples/bench_cost.py                    # CPU; prints a Markdown table
    python examples/bench_cost.py --compile          # and compiled columns (inductor)
    python examples/bench_cost.py --device cuda      # GPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch

import spmm

MODELS = ("resnet50", "vgg11_bn", "vit_small_patch16_224", "bert-base (random)", "llama decoder (random)")
MMAP_THRESHOLD = 65536
"""glibc allocates blocks of at least this many bytes with mmap in the child processes, so that freed
tensors leave the resident set at once: peak RSS then follows live memory.  glibc's default raises
the threshold after the first frees and keeps freed heap memory resident (--default-malloc)."""
RULESETS = {"resnet50": "vision", "vgg11_bn": "vision", "vit_small_patch16_224": "vision"}


class _Callable(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, forward: Callable) -> None:
        super().__init__()
        self.inner, self._forward = inner, forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)


def build(name: str, batch: int) -> tuple[torch.nn.Module, torch.Tensor, int]:
    """(model, inputs, target) for a benchmark model, random-initialised (no download)."""
    torch.manual_seed(0)
    image = torch.rand(batch, 3, 224, 224) * 2 - 1
    if name in ("resnet50", "vgg11_bn"):
        import torchvision

        return getattr(torchvision.models, name)().eval(), image, 1
    if name == "vit_small_patch16_224":
        import timm

        return timm.create_model(name, pretrained=False).eval(), image, 1
    if name == "bert-base (random)":
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(num_labels=2, attn_implementation="sdpa")  # BERT-base sizes: 12 x 768
        model = BertForSequenceClassification(config).eval()
        return _Callable(model, lambda x: model(inputs_embeds=x).logits), torch.randn(batch, 128, 768) * 0.5, 1
    if name == "llama decoder (random)":
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
            num_key_value_heads=8, max_position_embeddings=1024, attn_implementation="sdpa",
        )
        model = LlamaForCausalLM(config).eval()
        prompt = torch.randn(1, 512, 512) * 0.02  # one prompt of 512 token embeddings
        return _Callable(model, lambda x: model(inputs_embeds=x, logits_to_keep=1).logits[:, -1]), prompt, 5
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


def rules_mode(name: str, model: torch.nn.Module) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the pullback mode ``spmm.load`` would explain this model with."""
    ruleset = spmm.get_ruleset(RULESETS.get(name, "text")).for_model(model)
    return ruleset.mode


def input_gradient(model, x, target, mode: Callable | None) -> torch.Tensor:
    """One forward and one backward of the summed target logits (under ``mode()`` when given); d/dx."""
    x = x.detach().requires_grad_(True)
    with mode() if mode is not None else torch.enable_grad():
        logits = model(x)
    (grad,) = torch.autograd.grad(logits[:, target].sum(), x)
    if grad.is_cuda:
        torch.cuda.synchronize(grad.device)
    return grad


def peak_gpu(model, x, target, mode: Callable | None) -> int:
    """Peak growth (bytes) of allocated GPU memory during one explanation."""
    torch.cuda.synchronize(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    before = torch.cuda.memory_allocated(x.device)
    input_gradient(model, x, target, mode)
    return torch.cuda.max_memory_allocated(x.device) - before


def saved_bytes(model, x, target, mode: Callable | None) -> int:
    """Bytes of activations autograd keeps for the backward pass of one explanation (each storage
    counted once, only those still held when the forward pass ends; weights not counted)."""
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor):
        saved.append(t)
        return t

    x = x.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with mode() if mode is not None else torch.enable_grad():
            logits = model(x)
    weights = {p.untyped_storage().data_ptr() for p in [*model.parameters(), *model.buffers()]}
    held = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in saved if _held(t)}
    del logits
    return sum(size for pointer, size in held.items() if pointer not in weights)


def _held(t: torch.Tensor) -> bool:
    """Whether anything but ``saved`` (and this call) still refers to ``t``."""
    return sys.getrefcount(t) > 3


def peak_rss_child(name: str, batch: int, pullback: bool) -> int:
    """Peak RSS growth (bytes) of a fresh process during one explanation."""
    code = (  # this file loaded by path, so that it runs from any directory
        "import sys, json, importlib.util; sys.argv=['x'];"
        f"spec = importlib.util.spec_from_file_location('bench_cost', {os.path.abspath(__file__)!r});"
        "b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b);"
        f"print(json.dumps(b.measure_peak({name!r}, {batch}, {pullback})))"
    )
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)} if MMAP_THRESHOLD else None
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_peak(name: str, batch: int, pullback: bool) -> int:
    model, x, target = build(name, batch)
    mode = rules_mode(name, model) if pullback else None
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    input_gradient(model, x, target, mode)
    return (_status_kib("VmHWM") - before) * 1024


def interleaved_times(model, x, target, modes: dict[str, Callable | None], repeats: int, clock) -> dict[str, float]:
    """Median seconds per method, the methods run in turn ``repeats`` times (after one warm-up each)."""
    times: dict[str, list[float]] = {key: [] for key in modes}
    for mode in modes.values():
        input_gradient(model, x, target, mode)
    for _ in range(repeats):
        for key, mode in modes.items():
            start = clock()
            input_gradient(model, x, target, mode)
            times[key].append(clock() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="images / texts per explanation (the decoder row uses 1)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--time-only", action="store_true", help="skip the memory measurements")
    parser.add_argument("--default-malloc", action="store_true",
                        help="measure peak RSS with glibc's default (dynamic) mmap threshold")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model) (see --backend)")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend for --compile")
    parser.add_argument("--no-tf32", action="store_true", help="full fp32 convolutions and matrix products on CUDA")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU seconds (all threads) instead of wall-clock, on a shared machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    if args.default_malloc:
        global MMAP_THRESHOLD
        MMAP_THRESHOLD = 0
    device = torch.device(args.device)
    clock = time.process_time if args.cpu_time else time.perf_counter
    rows = []
    for name in args.models.split(","):
        model, x, target = build(name, args.batch)
        model, x = model.to(device), x.to(device)
        mode = rules_mode(name, model)
        row = {"name": name, **interleaved_times(model, x, target, {"grad": None, "sp": mode}, args.repeats, clock)}
        if args.compile:
            compiled = torch.compile(model, backend=args.backend)
            for key, method_mode in (("grad", None), ("sp", mode)):
                start = time.perf_counter()
                input_gradient(compiled, x, target, method_mode)  # compiles
                row[f"compile {key}"] = time.perf_counter() - start
            for key, method_mode in (("grad", None), ("sp", mode)):
                eager, fast = input_gradient(model, x, target, method_mode), input_gradient(compiled, x, target, method_mode)
                row[f"compiled {key} error"] = float((fast - eager).norm() / eager.norm())
            timed = interleaved_times(compiled, x, target, {"grad": None, "sp": mode}, args.repeats, clock)
            row.update({f"compiled {key}": value for key, value in timed.items()})
            if not args.time_only:
                row["compiled saved grad"] = saved_bytes(compiled, x, target, None)
                row["compiled saved sp"] = saved_bytes(compiled, x, target, mode)
            torch._dynamo.reset()
        if not args.time_only:
            row["saved grad"], row["saved sp"] = saved_bytes(model, x, target, None), saved_bytes(model, x, target, mode)
            if device.type == "cuda":
                row["peak grad"], row["peak sp"] = peak_gpu(model, x, target, None), peak_gpu(model, x, target, mode)
            else:
                row["peak grad"] = peak_rss_child(name, args.batch, False)
                row["peak sp"] = peak_rss_child(name, args.batch, True)
        rows.append(row)
        print(f"done {name}: {json.dumps(row)}", file=sys.stderr, flush=True)
    print_tables(rows, args, device, clock)


def print_tables(rows: list[dict], args, device: torch.device, clock) -> None:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    seconds = "CPU seconds" if clock is time.process_time else "wall-clock seconds"
    where += ", TF32 off" if args.no_tf32 else ""
    print(f"torch {torch.__version__}, {where}, batch {args.batch} (decoder: 1 prompt of 512 tokens), "
          f"median of {args.repeats} interleaved runs, {seconds}\n")
    mib, nan = 2**20, float("nan")
    peak = "peak GPU memory growth" if device.type == "cuda" else "peak RSS growth"
    print("| model | gradient s | SoftPullback s | time ratio | activations saved for backward (grad → SP) | ratio "
          f"| {peak} (grad → SP) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        sg, ss, pg, ps = (r.get(k, nan) for k in ("saved grad", "saved sp", "peak grad", "peak sp"))
        print(f"| {r['name']} | {r['grad']:.3f} | {r['sp']:.3f} | {r['sp'] / r['grad']:.2f}× | "
              f"{sg / mib:.0f} → {ss / mib:.0f} MiB | {ss / sg:.2f}× | {pg / mib:.0f} → {ps / mib:.0f} MiB | {ps / pg:.2f}× |")
    if not args.compile:
        return
    print(f"\ntorch.compile(model, backend={args.backend!r}):\n")
    print("| model | compile s (grad, SP) | gradient s | SoftPullback s | time ratio | SP compiled vs eager "
          "| relative error compiled vs eager (grad; SP) | activations saved for backward (grad → SP) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sg, ss = r.get("compiled saved grad", nan), r.get("compiled saved sp", nan)
        print(f"| {r['name']} | {r['compile grad']:.0f}, {r['compile sp']:.0f} | {r['compiled grad']:.3f} | "
              f"{r['compiled sp']:.3f} | {r['compiled sp'] / r['compiled grad']:.2f}× | "
              f"{r['compiled sp'] / r['sp']:.2f}× | {r['compiled grad error']:.1e}; {r['compiled sp error']:.1e} | {sg / mib:.0f} → {ss / mib:.0f} MiB | "
              f"{ss / sg:.2f}× |")


if __name__ == "__main__":
    main()
