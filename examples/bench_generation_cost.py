"""Cost of attributing N generated tokens on the shipped tiny LM: time and peak memory.

Compared, for N = 1, 8, 32 greedily generated tokens after one prompt (generated once, outside the
timings, with EOS suppressed; every variant attributes the same tokens):

- ``spmm-sp``: ``m.explain(prompt, target=spmm.Continuation(token_ids))`` (SoftPullback, default
  ``strategy="shared"``: one forward of the sequence under the rules, one backward per token);
- ``spmm-sp-batched``: the same with ``strategy="batched"`` (N copies of the sequence in one batch:
  one forward + one backward; what every other method uses);
- ``spmm-grad``: ``spmm-sp`` with ``method="gradient"``;
- ``grad-loop``: a plain gradient loop: for each token, a forward pass of its prefix and a backward
  of its logit (what one writes by hand without spmm).

Times are medians over interleaved repetitions (every variant once per round); peak memory is the
growth of the resident set's high-water mark in a fresh subprocess per (variant, N) (Linux).

    OMP_NUM_THREADS=1 python examples/bench_generation_cost.py [--repeats 5] [--out benchmarks/generation_cost.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import spmm

PROMPT = "the film is a"
SIZES = (1, 8, 32)
VARIANTS = ("spmm-sp", "spmm-sp-batched", "spmm-grad", "grad-loop")


def generated(m, n: int) -> tuple[list[int], list[int]]:
    """(prompt ids, n greedy new ids)."""
    ids = m.tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        out = m.lm.generate(torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                            pad_token_id=m.tokenizer.pad_token_id)
    return ids, out[0, len(ids):].tolist()


def grad_loop(m, ids: list[int], new: list[int]) -> None:
    full = ids + new
    embedding = m.lm.get_input_embeddings()
    for t, token in enumerate(new):
        x = embedding(torch.tensor([full[: len(ids) + t]])).detach().requires_grad_(True)
        logit = m.lm(inputs_embeds=x).logits[0, -1, token]
        torch.autograd.grad(logit, x)


def run(m, variant: str, ids: list[int], new: list[int]) -> None:
    if variant == "grad-loop":
        grad_loop(m, ids, new)
    else:
        method = "gradient" if variant == "spmm-grad" else "soft_pullback"
        strategy = "batched" if variant == "spmm-sp-batched" else "auto"
        m.explain(PROMPT, target=spmm.Continuation(new), method=method, strategy=strategy)


def peak_memory(variant: str, n: int) -> float:
    """Peak resident-set growth (MiB) of a fresh process running ``variant`` once: the kernel's
    high-water mark (VmHWM) is reset through ``/proc/self/clear_refs`` just before the run."""
    code = (
        "import torch, spmm;"
        "from examples.bench_generation_cost import run, generated, status_kib;"
        f"m = spmm.load('tiny-lm'); ids, new = generated(m, {n}); run(m, 'grad-loop', ids, new[:1]);"
        "open('/proc/self/clear_refs', 'w').write('5'); before = status_kib('VmRSS');"
        f"run(m, {variant!r}, ids, new);"
        "print((status_kib('VmHWM') - before) / 1024)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    return float(out.stdout.strip().splitlines()[-1])


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/generation_cost.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from tqdm import tqdm
    import transformers

    m = spmm.load("tiny-lm")
    tokens = {n: generated(m, n) for n in SIZES}
    for n in SIZES:  # warm-up
        for variant in VARIANTS:
            run(m, variant, *tokens[n])
    times: dict[str, list[float]] = {f"{v}/{n}": [] for n in SIZES for v in VARIANTS}
    for _ in tqdm(range(args.repeats), desc="interleaved timing rounds"):
        for n in SIZES:
            for variant in VARIANTS:
                start = time.perf_counter()
                run(m, variant, *tokens[n])
                times[f"{variant}/{n}"].append(time.perf_counter() - start)
    memory = {f"{v}/{n}": peak_memory(v, n) for n in tqdm(SIZES, desc="peak memory (subprocesses)") for v in VARIANTS}
    rows = []
    for n in SIZES:
        base = statistics.median(times[f"grad-loop/{n}"])
        for variant in VARIANTS:
            median = statistics.median(times[f"{variant}/{n}"])
            rows.append({"tokens": n, "variant": variant, "median_s": round(median, 4),
                         "vs_grad_loop": round(median / base, 2), "peak_rss_growth_mib": round(memory[f"{variant}/{n}"], 1)})
    report = {
        "command": f"OMP_NUM_THREADS=1 python examples/bench_generation_cost.py --repeats {args.repeats}",
        "prompt": PROMPT, "continuation": m.tokenizer.decode(tokens[max(SIZES)][1]), "model": "tiny-lm", "load_average": os.getloadavg(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), "cpu_threads": 1},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'N':>3}  {'variant':<16} {'median s':>9} {'x loop':>7} {'peak MiB':>9}")
    for row in rows:
        print(f"{row['tokens']:>3}  {row['variant']:<16} {row['median_s']:>9.4f} {row['vs_grad_loop']:>7.2f} "
              f"{row['peak_rss_growth_mib']:>9.1f}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
