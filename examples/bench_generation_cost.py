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

``--vlm``: the same variants on a vision-language model, a random LLaVA (:func:`save_random_llava`:
CLIP vision tower 112 px in 14 px patches, 4 layers of width 128; Llama decoder, 4 layers of width
256; the packaged MiniLM tokenizer), explaining N = 1, 8, 16 tokens generated after a prompt on one
picture, on the pixels and the prompt at once.  The gradient loop runs the model's processor on the
picture and, per token, one forward of its prefix and a backward of its logit to ``pixel_values``
and the input embeddings.  The table adds the cost per explained token and the ratio to
``spmm-grad``; no memory column.

    OMP_NUM_THREADS=1 python examples/bench_generation_cost.py --vlm [--repeats 5] [--out benchmarks/generation_cost_vlm.json]
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
VLM_PROMPT = "What is in the picture?"
VLM_SIZES = (1, 8, 16)
VLM_IMAGE_SIDE, VLM_PATCH = 112, 14


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


def save_random_llava(folder: Path, seed: int = 0) -> Path:
    """A random LLaVA (sizes in the module docstring) with its processor, saved with ``save_pretrained``."""
    import transformers as t

    from spmm.adapters.text.models import load_minilm

    tokenizer = load_minilm()[0]
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    patches = (VLM_IMAGE_SIDE // VLM_PATCH) ** 2
    vision = t.CLIPVisionConfig(image_size=VLM_IMAGE_SIDE, patch_size=VLM_PATCH, hidden_size=128,
                                intermediate_size=512, num_hidden_layers=4, num_attention_heads=4)
    text = t.LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                         eos_token_id=tokenizer.sep_token_id)
    config = t.LlavaConfig(vision_config=vision, text_config=text,
                           image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                           vision_feature_select_strategy="full", image_seq_length=patches + 1)
    torch.manual_seed(seed)
    model = t.LlavaForConditionalGeneration(config).eval()
    images = t.CLIPImageProcessor(size={"shortest_edge": VLM_IMAGE_SIDE},
                                  crop_size={"height": VLM_IMAGE_SIDE, "width": VLM_IMAGE_SIDE})
    processor = t.LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=VLM_PATCH,
                                 vision_feature_select_strategy="full", image_token="<image>",
                                 num_additional_image_tokens=1)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def vlm_picture():
    """A fixed random 160 × 120 RGB picture."""
    import numpy as np
    from PIL import Image

    return Image.fromarray((np.random.RandomState(0).rand(120, 160, 3) * 255).astype("uint8"))


def vlm_inputs(m, picture) -> dict:
    """The processor's model inputs for the picture and :data:`VLM_PROMPT`."""
    batch = m.processor(images=picture, text=f"{m.processor.image_token}\n{VLM_PROMPT}", return_tensors="pt")
    return {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}


def vlm_generated(m, picture, n: int) -> list[int]:
    """n greedy new token ids (EOS suppressed)."""
    inputs = vlm_inputs(m, picture)
    with torch.no_grad():
        out = m.lm.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                            pad_token_id=m.processor.tokenizer.pad_token_id)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def vlm_grad_loop(m, picture, new: list[int]) -> None:
    """Per token: one forward of its prefix and a backward of its logit to the pixels and embeddings."""
    inputs = vlm_inputs(m, picture)
    ids = torch.cat([inputs["input_ids"], torch.tensor([new])], dim=1)
    prompt_length = inputs["input_ids"].shape[1]
    embedding = m.lm.get_input_embeddings()
    for t, token in enumerate(new):
        prefix = ids[:, : prompt_length + t]
        pixels = inputs["pixel_values"].clone().requires_grad_(True)
        x = embedding(prefix).detach().requires_grad_(True)
        logit = m.lm(inputs_embeds=x, pixel_values=pixels, attention_mask=torch.ones_like(prefix)).logits[0, -1, token]
        torch.autograd.grad(logit, [pixels, x])


def vlm_run(m, picture, variant: str, new: list[int]) -> None:
    if variant == "grad-loop":
        vlm_grad_loop(m, picture, new)
    else:
        method = "gradient" if variant == "spmm-grad" else "soft_pullback"
        strategy = "batched" if variant == "spmm-sp-batched" else "auto"
        m.explain(picture, prompt=VLM_PROMPT, target=spmm.Continuation(tuple(new)), method=method, strategy=strategy)


def main_vlm(repeats: int, out: Path) -> None:
    """The ``--vlm`` benchmark: interleaved timings, a table with the cost per explained token, JSON."""
    import tempfile

    import transformers
    from tqdm import tqdm

    with tempfile.TemporaryDirectory() as folder:
        m = spmm.load(str(save_random_llava(Path(folder))))
    picture = vlm_picture()
    tokens = {n: vlm_generated(m, picture, n) for n in VLM_SIZES}
    for n in VLM_SIZES:  # warm-up
        for variant in VARIANTS:
            vlm_run(m, picture, variant, tokens[n])
    times: dict[str, list[float]] = {f"{v}/{n}": [] for n in VLM_SIZES for v in VARIANTS}
    loads = [os.getloadavg()[0]]
    for _ in tqdm(range(repeats), desc="interleaved timing rounds"):
        for n in VLM_SIZES:
            for variant in VARIANTS:
                start = time.perf_counter()
                vlm_run(m, picture, variant, tokens[n])
                times[f"{variant}/{n}"].append(time.perf_counter() - start)
        loads.append(os.getloadavg()[0])
    rows = []
    for n in VLM_SIZES:
        base, gradient = (statistics.median(times[f"{v}/{n}"]) for v in ("grad-loop", "spmm-grad"))
        for variant in VARIANTS:
            median = statistics.median(times[f"{variant}/{n}"])
            rows.append({"tokens": n, "variant": variant, "median_s": round(median, 4),
                         "per_token_s": round(median / n, 4), "vs_grad_loop": round(median / base, 2),
                         "vs_spmm_grad": round(median / gradient, 2)})
    context = int(vlm_inputs(m, picture)["input_ids"].shape[1])
    report = {
        "command": f"OMP_NUM_THREADS=1 python examples/bench_generation_cost.py --vlm --repeats {repeats}",
        "model": {"kind": "random LlavaForConditionalGeneration (examples/bench_generation_cost.py: save_random_llava)",
                  "parameters": sum(p.numel() for p in m.lm.parameters()), "image_side": VLM_IMAGE_SIDE,
                  "patch": VLM_PATCH, "prompt_tokens_with_image": context},
        "prompt": VLM_PROMPT, "continuation": m.processor.tokenizer.decode(tokens[max(VLM_SIZES)]),
        "load_average_1min_per_round": [round(load, 2) for load in loads], "cpu_count": os.cpu_count(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), "cpu_threads": 1},
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"random LLaVA, {report['model']['parameters'] / 1e6:.1f} M parameters, {context} prompt tokens with the image; "
          f"median of {repeats} interleaved rounds, 1 thread")
    print(f"{'N':>3}  {'variant':<16} {'median s':>9} {'s/token':>8} {'x loop':>7} {'x grad':>7}")
    for row in rows:
        print(f"{row['tokens']:>3}  {row['variant']:<16} {row['median_s']:>9.4f} {row['per_token_s']:>8.4f} "
              f"{row['vs_grad_loop']:>7.2f} {row['vs_spmm_grad']:>7.2f}")
    print(f"1-min load average per round {report['load_average_1min_per_round']} on {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vlm", action="store_true", help="on a random LLaVA, explaining on the image and the prompt")
    parser.add_argument("--out", type=Path, default=None,
                        help="default benchmarks/generation_cost.json (--vlm: benchmarks/generation_cost_vlm.json)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.vlm:
        main_vlm(args.repeats, args.out or Path("benchmarks/generation_cost_vlm.json"))
        return
    args.out = args.out or Path("benchmarks/generation_cost.json")
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
