"""Time and peak memory per attributed token (random-init Llama, hidden 512, 4 layers) and per image
(ResNet50, ViT-S/16, random init) for spmm SP and its peers, interleaved over methods so that the machine's load hits every method alike.

All methods of one model and input size are built in one process, warmed up once, then timed in
--rounds interleaved rounds (A, B, C, A, B, C, ...) of --repeats calls; the table reports medians
over rounds.  Peak memory = the resident high-water mark (VmHWM, reset through /proc/self/clear_refs
before each measurement) minus the resident size before it, with glibc's mmap threshold fixed at
64 KiB so that freed tensors leave the resident set.  Text: one attributed token = the logit of one next token
from a prompt of L tokens (common one-piece words, MiniLM word pieces, no special tokens).

Usage: python benchmarks/peers/speed.py --out benchmarks/peers/speed   (CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

TEXT_METHODS = ("gradient", "soft_pullback", "lxt:attnlrp", "inseq:saliency", "captum:layer_gradient_x_activation")
IMAGE_METHODS = ("gradient", "soft_pullback", "zennit:epsilon_plus_flat", "captum:saliency")
WORDS = "the movie was a good one and it is not bad but very long with great music".split()


def _resident_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _text_call(method: str, length: int) -> Callable[[], Any]:
    from transformers import AutoTokenizer

    from spmm.adapters.peers.decoders import next_token_logits, random_llama
    from spmm.adapters.text.models import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    tokenizer.model_max_length = 4 * length  # MiniLM's 512 is MiniLM's limit; inseq would truncate the Llama's prompt to it
    model = random_llama(len(tokenizer), 0, 512, 4)
    text = " ".join(WORDS[i % len(WORDS)] for i in range(length))
    ids = torch.tensor(tokenizer(text, add_special_tokens=False).input_ids)
    assert ids.numel() == length
    target = torch.tensor([tokenizer.convert_tokens_to_ids("good")])
    embeddings = model.get_input_embeddings()(ids.view(1, -1)).detach()
    logits = next_token_logits(model)
    if method == "gradient":
        def call() -> Any:
            x = embeddings.clone().requires_grad_(True)
            return torch.autograd.grad(logits(x)[0, target].sum(), x)[0]
    elif method == "soft_pullback":
        from spmm.explain import explain

        def call() -> Any:
            return explain(logits, embeddings, target, "soft_pullback", rules="text").attributions
    elif method == "lxt:attnlrp":
        from spmm.adapters.peers.lxt_rules import lxt_rules

        def call() -> Any:
            with lxt_rules(model, "attnlrp"):
                x = embeddings.clone().requires_grad_(True)
                return torch.autograd.grad(logits(x)[0, target].sum(), x)[0]
    elif method == "inseq:saliency":
        import inseq

        attribution_model = inseq.load_model(model, "saliency", tokenizer=tokenizer)

        def call() -> Any:
            return attribution_model.attribute(text, generated_texts=text + " good", attributed_fn="logit",
                                               skip_special_tokens=True, show_progress=False)
    else:
        from captum.attr import LayerGradientXActivation, LLMGradientAttribution, TextTokenInput

        llm = LLMGradientAttribution(LayerGradientXActivation(model, model.get_input_embeddings()), tokenizer)
        prompt = TextTokenInput(text, tokenizer)
        prompt.inp_tensor = ids.view(1, -1)  # the same L tokens (no [CLS]/[SEP] added)

        def call() -> Any:
            return llm.attribute(prompt, target=target)
    return call


def _image_call(method: str, model_name: str) -> Callable[[], Any]:
    import timm
    from torchvision.models import resnet50

    torch.manual_seed(0)
    net = resnet50() if model_name == "resnet50" else timm.create_model("vit_small_patch16_224", pretrained=False)
    net.eval()
    image = torch.rand(1, 3, 224, 224) * 2 - 1
    target = torch.tensor([3])
    if method == "gradient":
        def call() -> Any:
            x = image.clone().requires_grad_(True)
            return torch.autograd.grad(net(x)[0, 3], x)[0]
    elif method == "soft_pullback":
        from spmm.explain import explain

        def call() -> Any:
            return explain(net, image, target, "soft_pullback", rules="vision").attributions
    elif method == "zennit:epsilon_plus_flat":
        from spmm.adapters.peers.zennit_explainers import zennit_explainer

        explain_fn = zennit_explainer("epsilon_plus_flat")

        def call() -> Any:
            return explain_fn(net, image, target)
    else:
        from spmm.adapters.peers.captum_explainers import captum_explainer

        explain_fn = captum_explainer("captum:saliency")

        def call() -> Any:
            return explain_fn(net, image, target)
    return call


def _timed(call: Callable[[], Any], repeats: int) -> tuple[list[float], float]:
    """Seconds of ``repeats`` calls and the peak resident memory above the start (MiB)."""
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark VmHWM
    before, _ = _resident_mb()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    _, peak = _resident_mb()
    return seconds, peak - before


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    """Medians over rounds per (model, size, method): seconds, ratio to the plain gradient, peak extra MiB."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["setting"] = frame.apply(lambda r: f"Llama L={int(r['length'])}" if r["kind"] == "text" else r["model"], axis=1)
    medians = frame.groupby(["setting", "method"], sort=False).agg(
        seconds=("seconds", "median"), peak=("peak_extra_mib", "median"), rounds=("round", "count"), load=("load1", "median"))
    lines = ["| setting | method | s per token / image (median) | × gradient | peak extra MiB | rounds | load (1 min) |",
             "|---|---|---|---|---|---|---|"]
    for (setting, method), row in medians.iterrows():
        ratio = row.seconds / medians.loc[(setting, "gradient"), "seconds"]
        lines.append(f"| {setting} | {method} | {row.seconds:.3f} | {ratio:.2f} | {row.peak:.0f} | {int(row.rounds)} | {row.load:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--lengths", default="128,512,2048")
    parser.add_argument("--images", default="resnet50,vit_small")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--summarise", action="store_true", help="only print the table of OUT/speed_raw.jsonl")
    args = parser.parse_args()
    if args.summarise:
        rows = [json.loads(line) for line in (Path(args.out) / "speed_raw.jsonl").read_text().splitlines() if line]
        print(summary_markdown(rows))
        return
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        # freed tensors must leave the resident set, or later methods' peaks hide under earlier ones
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    torch.set_num_threads(1)
    groups = [[{"kind": "text", "length": int(n), "method": m} for m in TEXT_METHODS] for n in args.lengths.split(",") if n]
    groups += [[{"kind": "image", "model": name, "method": m} for m in IMAGE_METHODS] for name in args.images.split(",") if name]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "speed_raw.jsonl").open("a") as log:
        for cases in groups:  # one model and input size at a time, methods interleaved: A B C … A B C …
            calls = [_text_call(c["method"], c["length"]) if c["kind"] == "text" else _image_call(c["method"], c["model"])
                     for c in cases]
            for call in calls:
                call()  # warm-up
            for round_index in range(args.rounds):
                for case, call in zip(cases, calls):
                    load = os.getloadavg()[0]
                    seconds, peak = _timed(call, args.repeats)
                    row = {**case, "round": round_index, "seconds": statistics.median(seconds), "peak_extra_mib": peak,
                           "load1": load}
                    print(json.dumps(row), flush=True)
                    log.write(json.dumps(row) + "\n")
                    log.flush()


if __name__ == "__main__":
    main()
