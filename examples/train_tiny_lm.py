"""Train the small causal LM shipped as ``spmm.load("tiny-lm")`` (CPU-sized, real English text).

Corpus (``../shared/data/text``, lower-cased): SST-2 train sentences, AG News rows
0..6599 (``title. description``) and TREC train questions; held out: SST-2 dev and AG News
rows 6600..7599. A byte-level BPE tokenizer (vocab 4096, ``<|endoftext|>`` as BOS/EOS/pad,
BOS added to every text) is trained on the training split with ``tokenizers``; the model is a
Llama-architecture decoder (hidden 160, 4 layers, 5 heads, SiLU-gated MLP 448, RMSNorm, tied
embeddings; about 1.6 M parameters) trained with AdamW on 64-token blocks of the
concatenated documents. Held-out perplexity is reported next to a unigram baseline (token
frequencies of the training split, add-one smoothed) on the same target tokens.

Writes ``adapters/data/tiny-lm/`` (safetensors weights, config, tokenizer) and
``adapters/data/tiny-lm/training.json`` (data, steps, perplexities, wall time, versions).

    OMP_NUM_THREADS=1 nice -n 5 python examples/train_tiny_lm.py [--steps 700]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
from tqdm import tqdm

from spmm.modalities.text.datasets import read_ag_news, read_sst2

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "text"
EOS = "<|endoftext|>"
AG_TRAIN_ROWS = 6600
BLOCK = 64
MAX_POSITIONS = 256


def corpus(data: Path) -> tuple[list[str], list[str]]:
    """(training texts, held-out texts), lower-cased."""
    sst_train, _ = read_sst2(data / "sst2" / "stsa.binary.train")
    sst_dev, _ = read_sst2(data / "sst2" / "stsa.binary.dev")
    ag, _ = read_ag_news(data / "ag_news" / "test.csv")
    trec = [line.split(" ", 1)[1].strip() for line in
            (data / "trec" / "TREC.train.all").read_text(encoding="latin-1").splitlines() if " " in line]
    train = sst_train + ag[:AG_TRAIN_ROWS] + trec
    held_out = sst_dev + ag[AG_TRAIN_ROWS:]
    return [t.lower() for t in train], [t.lower() for t in held_out]


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (lower-casing normaliser, BOS prepended) wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    eos_id = tokenizer.token_to_id(EOS)
    tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{EOS} $A", pair=f"{EOS} $A {EOS} $B", special_tokens=[(EOS, eos_id)]),
    ])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOS, eos_token=EOS, pad_token=EOS,
                                   model_max_length=MAX_POSITIONS)


def token_stream(tokenizer, texts: list[str]) -> torch.Tensor:
    """All texts as ``BOS text EOS`` concatenated: (N,) int64."""
    ids = tokenizer(texts)["input_ids"]
    return torch.tensor([i for row in ids for i in row + [tokenizer.eos_token_id]], dtype=torch.long)


def blocks(stream: torch.Tensor) -> torch.Tensor:
    """Non-overlapping (n, BLOCK) blocks of the stream (the tail is dropped)."""
    n = stream.numel() // BLOCK
    return stream[: n * BLOCK].view(n, BLOCK)


def unigram_perplexity(train: torch.Tensor, held_out: torch.Tensor, vocab_size: int) -> float:
    """exp of the mean negative log of add-one-smoothed training token frequencies on the held-out targets."""
    counts = torch.bincount(train[:, 1:].reshape(-1), minlength=vocab_size).double() + 1.0
    log_p = (counts / counts.sum()).log()
    return math.exp(-log_p[held_out[:, 1:].reshape(-1)].mean().item())


@torch.no_grad()
def lm_perplexity(model, held_out: torch.Tensor, batch: int = 32) -> float:
    """exp of the mean next-token cross-entropy on the held-out blocks (targets = positions 1..BLOCK-1)."""
    total, count = 0.0, 0
    for start in range(0, held_out.shape[0], batch):
        x = held_out[start:start + batch]
        logits = model(input_ids=x).logits[:, :-1]
        total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                   reduction="sum").item()
        count += x[:, 1:].numel()
    return math.exp(total / count)


def build_model(vocab_size: int, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=160, intermediate_size=448, num_hidden_layers=4,
                         num_attention_heads=5, num_key_value_heads=5, max_position_embeddings=MAX_POSITIONS,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=REPO / "adapters" / "data" / "tiny-lm")
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--vocab", type=int, default=2048)
    args = parser.parse_args()
    start = time.time()
    train_texts, held_texts = corpus(args.data)
    tokenizer = train_tokenizer(train_texts, args.vocab)
    train, held_out = blocks(token_stream(tokenizer, train_texts)), blocks(token_stream(tokenizer, held_texts))
    model = build_model(len(tokenizer), tokenizer).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    warmup = max(1, args.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    generator = torch.Generator().manual_seed(0)
    losses = []
    for step in (bar := tqdm(range(args.steps), desc="training tiny-lm")):
        rows = torch.randint(0, train.shape[0], (args.batch,), generator=generator)
        loss = model(input_ids=train[rows], labels=train[rows]).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
    model.eval()
    import transformers

    report = {
        "architecture": "LlamaForCausalLM",
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_texts": len(train_texts), "train_tokens": int(train.numel()),
        "held_out_texts": len(held_texts), "held_out_tokens": int(held_out.numel()),
        "data": "SST-2 train + AG News rows 0..6599 + TREC train (lower-cased); held out: SST-2 dev + AG News rows 6600..7599",
        "steps": args.steps, "batch": args.batch, "block": BLOCK, "lr": args.lr,
        "final_train_loss_mean_last_50": sum(losses[-50:]) / len(losses[-50:]),
        "held_out_perplexity": lm_perplexity(model, held_out),
        "unigram_perplexity": unigram_perplexity(train, held_out, len(tokenizer)),
        "wall_seconds": round(time.time() - start, 1),
        "command": f"python examples/train_tiny_lm.py --steps {args.steps} --batch {args.batch} --lr {args.lr}",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), "machine": platform.machine()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    (args.out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
