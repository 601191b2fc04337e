"""Train the ``shapes-captioner`` (``spmm.adapters.hf.shapes_captioner``) on CPU and ship it.

Every step draws ``--batch-size`` fresh captioned scenes of seed ``--seed``
(``captioned_scenes_at``, scene indices step·batch …, never repeated) and minimises the cross
entropy of the caption words and ``[EOS]`` after ``<image>×256 describe`` (teacher forcing).
At the end, greedy captions (``generate``) of ``--test`` held-out scenes of seed ``--test-seed``
give the exact-match rate and the per-word accuracy.  Writes the ``save_pretrained`` folder
``<out>`` (model, processor) and ``<out>/training.json`` (numbers, command, versions).

    OMP_NUM_THREADS=1 nice -n 5 python examples/train_shapes_captioner.py --out adapters/data/shapes-captioner

One thread: on a shared 2-core machine two threads cost more CPU time per step than they save.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from tqdm import tqdm

from spmm.adapters.hf.shapes_captioner import IMAGE_TOKEN, IMAGE_TOKENS, PROMPT, SIDE, build_captioner
from spmm.modalities.image.shapes_captions import captioned_scenes_at


def token_batch(tokenizer, captions: list[str]) -> torch.Tensor:
    """(B, 256 + 1 + words + 1) ids: image placeholders, the prompt, the caption, [EOS]."""
    prefix = [tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)] * IMAGE_TOKENS + tokenizer.encode(PROMPT)
    return torch.tensor([prefix + tokenizer.encode(c) + [tokenizer.eos_token_id] for c in captions])


@torch.no_grad()
def greedy_captions(model, tokenizer, images: np.ndarray, batch_size: int = 50) -> list[str]:
    """Greedy captions of ``images`` (N, 3, H, W) in [0, 1] (pixel_values = 2·x − 1, the processor's map)."""
    prefix = token_batch(tokenizer, [""])[:, :-1]
    captions = []
    for start in range(0, len(images), batch_size):
        pixels = torch.from_numpy(images[start:start + batch_size]) * 2 - 1
        ids = prefix.expand(len(pixels), -1)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels,
                             max_new_tokens=10, do_sample=False, num_beams=1)
        captions += tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
    return captions


def caption_scores(predicted: list[str], expected: list[str]) -> tuple[float, float]:
    """(exact-match rate, per-word accuracy: word k right, over every word of every expected caption)."""
    exact = np.mean([p.split() == e.split() for p, e in zip(predicted, expected)])
    right = [w == (p.split() + [""] * len(e.split()))[k] for p, e in zip(predicted, expected) for k, w in enumerate(e.split())]
    return float(exact), float(np.mean(right))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("adapters/data/shapes-captioner"))
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--test-seed", type=int, default=1000)
    parser.add_argument("--test", type=int, default=500, help="held-out scenes for the caption accuracy")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    started = time.time()
    model, processor = build_captioner(args.seed)
    tokenizer = processor.tokenizer
    optimiser = torch.optim.AdamW(model.parameters(), args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=args.steps, pct_start=0.1)
    args.out.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(args.out)  # the checkpoints saved every 100 steps load with spmm.load(out)
    model.train()
    bar = tqdm(range(args.steps), desc="training shapes-captioner")
    for step in bar:
        scenes = captioned_scenes_at(range(step * args.batch_size, (step + 1) * args.batch_size), args.seed, SIDE)
        ids = token_batch(tokenizer, scenes.captions)
        labels = ids.clone()
        labels[:, :IMAGE_TOKENS + 1] = -100
        loss = model(input_ids=ids, pixel_values=torch.from_numpy(scenes.images) * 2 - 1, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % 100 == 0 or step + 1 == args.steps:
            model.save_pretrained(args.out)
    model.eval()
    train_seconds = time.time() - started
    held_out = captioned_scenes_at(range(args.test), args.test_seed, SIDE)
    exact, per_word = caption_scores(greedy_captions(model, tokenizer, held_out.images), held_out.captions)
    model.save_pretrained(args.out)
    card = {
        "name": "shapes-captioner",
        "architecture": "LlavaForConditionalGeneration (CLIP vision tower, GPT-2 decoder)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "prompt": PROMPT,
        "train_seed": args.seed, "train_scenes": args.steps * args.batch_size, "steps": args.steps,
        "batch_size": args.batch_size, "learning_rate": args.lr,
        "test_seed": args.test_seed, "test_scenes": args.test,
        "caption_exact_match": exact, "word_accuracy": per_word,
        "train_seconds": round(train_seconds, 1),
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python " + " ".join(sys.argv),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), "machine": platform.machine()},
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs",
        "load_average": os.getloadavg()[0],
    }
    (args.out / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
