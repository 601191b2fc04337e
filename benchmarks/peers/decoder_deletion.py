"""Token deletion on the trained ``tiny-lm``: which tokens does the predicted next token depend on?

For each held-out prompt (SST-2 dev sentences: the tiny LM never saw them, see its training.json)
the model predicts its next token y greedily; every method explains the logit of y on the
prompt's token embeddings (the log-softmax on top has no SP rule: the audit would flag it), and
the deletion curves read log p(y | …).  Each method is scored in two forms:
- ``signed``: the signed token score spmm's text explanations use: ⟨a, x⟩ (a the attribution, x the
  token's embedding), or Σ_d a_d for methods whose attribution is already input-multiplied (IG);
- ``norm``: the unsigned ‖a‖₂ per token (what inseq and most demos show).
Tokens are then deleted from the prompt (dropped, not masked: the LM has no mask token) in the
order of the scores, most relevant first (MoRF) and least relevant first (LeRF), one token per
step up to all of them (the BOS token always stays), and log p(y | remaining tokens) is read at
each step.  Metrics (all ↑, in nats, mean over the n + 1 steps of a prompt with n tokens):
- ``morf_drop``: mean of log p(y|x) − log p(y|x without the top-k tokens);
- ``lerf_retained``: mean of log p(y|x without the bottom-k) − log p(y|x) (≤ 0 when ranking works);
- ``area_between_curves``: mean LeRF − MoRF curve = morf_drop + lerf_retained.
Paired bootstrap CIs against ``soft_pullback`` (signed) come from the bench's own tables.

Every SP variant is audited before the run: the rule set reaches every module it names (the
model is passed as the ``nn.Module`` it is) and no op keeps its exact gradient.

Resumable: each finished prompt's rows go to ``OUT/rows.jsonl`` under a key of the run's settings; a
re-run with the same settings skips them, one with other settings refuses to mix rows.

Usage: python benchmarks/peers/decoder_deletion.py --n 150 --out benchmarks/peers/decoder_tiny_lm
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

import spmm
from spmm.adapters.peers.decoders import NextTokenLogits
from spmm.adapters.peers.versions import installed_versions
from spmm.bench.runner import write_reports
from spmm.modalities.text.datasets import read_sst2
from spmm.modalities.text.explanation import default_score
from spmm.modalities.text.words import token_scores as score_tokens

REFERENCE = "soft_pullback:signed"


def spmm_attribution(method: str, rules: spmm.RuleSet | None, **params) -> Callable[[nn.Module, Tensor, int], Tensor]:
    def attribute(f: nn.Module, x: Tensor, y: int) -> Tensor:
        return spmm.explain(f, x, torch.tensor([y]), method, rules=rules, **params).attributions

    return attribute


def lxt_attribution(variant: str) -> Callable[[nn.Module, Tensor, int], Tensor]:
    from spmm.adapters.peers.lxt_rules import lxt_rules

    def attribute(f: nn.Module, x: Tensor, y: int) -> Tensor:
        with torch.enable_grad(), lxt_rules(f.lm, variant):
            x = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(f(x)[0, y], x)
        return grad

    return attribute


def deletion_curves(lm: nn.Module, ids: Tensor, y: int, scores: Tensor) -> tuple[Tensor, Tensor]:
    """ids (L,) with BOS first, scores (L − 1,) of the tokens after BOS -> log p(y | …) after deleting
    0 … L − 1 tokens most relevant first and least relevant first: two (L,) curves."""
    n = scores.numel()
    curves = []
    for order in (scores.argsort(descending=True, stable=True), scores.argsort(stable=True)):
        sequences = []
        for k in range(n + 1):
            keep = torch.ones(n, dtype=torch.bool)
            keep[order[:k]] = False
            sequences.append(torch.cat([ids[:1], ids[1:][keep]]))
        lengths = torch.tensor([s.numel() for s in sequences])
        batch = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=int(ids[0]))
        with torch.no_grad():  # right padding: a causal LM's last real position never sees the padding
            logits = lm(input_ids=batch).logits[torch.arange(n + 1), lengths - 1].float()
        curves.append(torch.log_softmax(logits, -1)[:, y])
    return curves[0], curves[1]


def prompts(path: str, tokenizer, n: int, seed: int, min_tokens: int, max_tokens: int) -> list[tuple[int, Tensor]]:
    texts, _ = read_sst2(path)
    chosen = []
    for row in random.Random(seed).sample(range(len(texts)), len(texts)):
        ids = torch.tensor(tokenizer(texts[row]).input_ids)
        if min_tokens <= ids.numel() - 1 <= max_tokens:
            chosen.append((row, ids))
        if len(chosen) == n:
            break
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared/data/text/sst2/stsa.binary.dev"))
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--min-tokens", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--ig-steps", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lxt", action="store_true", help="add lxt:attnlrp and lxt:cp_lrp (needs the peers extra)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    m = spmm.load("tiny-lm")
    lm, tokenizer = m.lm.eval(), m.modality.tokenizer
    f = NextTokenLogits(lm).eval()
    embedding = lm.get_input_embeddings()
    mean_embedding = embedding.weight.detach().mean(0)  # IG baseline: zero sits on RMSNorm's singularity
    rules_t2 = m.rules.updated({"attention": 2.0})
    methods: dict[str, Callable] = {
        "soft_pullback": spmm_attribution("soft_pullback", m.rules),
        "soft_pullback@attention2": spmm_attribution("soft_pullback", rules_t2),
        "integrated_pullbacks": None,  # needs the prompt's baseline: filled per prompt below
        "gradient": spmm_attribution("gradient", None),
        "integrated_gradients": None,
    }
    if args.lxt:
        methods |= {"lxt:attnlrp": lxt_attribution("attnlrp"), "lxt:cp_lrp": lxt_attribution("cp_lrp")}

    items = prompts(args.data, tokenizer, args.n, args.seed, args.min_tokens, args.max_tokens)
    probe = embedding(items[0][1].view(1, -1)).detach()
    for name, rules in (("soft_pullback", m.rules), ("soft_pullback@attention2", rules_t2)):
        report = spmm.audit(f, probe, temperatures=rules.temperatures, module_rules=rules.for_model(f).module_rules)
        if report.unhandled:
            raise SystemExit(f"{name}: ops keep their exact gradient under the rule set: {report.unhandled}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"args": vars(args), "model": "tiny-lm", "target": "logit of the predicted next token; curves: its log-probability",
                "methods": list(methods), "forms": ["signed", "norm"], "versions": installed_versions(),
                "torch": torch.__version__, "machine": platform.machine(), "processor": platform.processor()}
    key = hashlib.sha256(json.dumps({k: v for k, v in settings.items() if k != "args"} | {
        "args": {k: v for k, v in vars(args).items() if k not in ("out", "n")}}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    rows_file = out / "rows.jsonl"
    done = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    if any(entry["key"] != key for entry in done):
        raise SystemExit(f"{rows_file} holds rows computed with other settings; use another --out")
    records = [record for entry in done for record in entry["records"]]
    finished = {entry["row"] for entry in done}
    for row, ids in tqdm(items, desc="decoder deletion (prompts)"):
        if row in finished:
            continue
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + row)  # per prompt: resumes draw the same
        new = []
        x = embedding(ids.view(1, -1)).detach()
        with torch.no_grad():
            y = int(f(x)[0].argmax())
        baseline = mean_embedding.expand_as(x).clone()
        baseline[:, 0] = x[:, 0]  # the BOS stays as it is
        per_prompt = dict(methods)
        per_prompt["integrated_gradients"] = spmm_attribution("integrated_gradients", None, baseline=baseline,
                                                              steps=args.ig_steps)
        per_prompt["integrated_pullbacks"] = spmm_attribution("integrated_pullbacks", m.rules, baseline=baseline,
                                                              steps=args.ig_steps)
        token_scores: dict[str, Tensor] = {}
        for name, attribute in per_prompt.items():
            a = attribute(f, x, y).detach()
            method = name.split("@")[0]
            token_scores[f"{name}:signed"] = score_tokens(a, x, default_score(method))[0, 1:]
            token_scores[f"{name}:norm"] = score_tokens(a, x, "norm")[0, 1:]
        token_scores["random"] = torch.rand(ids.numel() - 1, generator=generator)
        for name, scores in token_scores.items():
            morf, lerf = deletion_curves(lm, ids, y, scores)
            full = morf[0]
            drop, retained = float((full - morf).mean()), float((lerf - full).mean())
            for metric, value in (("morf_drop", drop), ("lerf_retained", retained), ("area_between_curves", drop + retained)):
                new.append({"sample": f"sst2-dev-{row}", "explainer": name, "metric": metric, "score": value})
        with rows_file.open("a") as stream:
            stream.write(json.dumps({"key": key, "row": row, "records": new}) + "\n")
        records += new
    write_reports(pd.DataFrame(records), out, settings, reference=REFERENCE)
    print((out / "summary.md").read_text())
    print(json.dumps({"prompts": len(items)}))


if __name__ == "__main__":
    main()
