"""Per-generated-token token-deletion faithfulness on a random-init Llama: SP vs LXT vs inseq.

Prompts: SST-2 test sentences (``random.Random(seed).sample``, MiniLM word pieces, no special
tokens, at most --max-prompt tokens); each is continued greedily by --steps tokens and every step
is explained (sample id ``ROW-stepT``).  Metrics: the bench's comprehensiveness / sufficiency (10/20/50 %
of the prefix tokens) and deletion AUC (one token per step), removed tokens replaced by the [MASK]
embedding, on the *logit* of the generated token (what every method explains; over a 30522-token
vocabulary of a random model the probabilities are all ≈ 0).  Token scores: see
``spmm.adapters.peers.decoders``.  Items whose continuation does not survive decode/re-tokenise
(inseq re-tokenises text) are skipped and counted.

Usage: python benchmarks/peers/decoder_faithfulness.py --n 60 --out benchmarks/peers/decoder
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from spmm.adapters.peers.decoders import DECODER_METHODS, greedy_continuation, next_token_logits, random_llama, token_scores
from spmm.adapters.peers.versions import installed_versions
from spmm.adapters.text.models import minilm_path
from spmm.bench.runner import write_reports
from spmm.metrics.groups import FeatureGroups
from spmm.metrics.registry import make_metric
from spmm.modalities.text.datasets import read_sst2


def report(records: list[dict], out: Path, settings: dict) -> None:
    """The bench's reports (scores, summary, paired CIs vs SP) of the items done so far."""
    write_reports(pd.DataFrame(records), out, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared/data/text/sst2/stsa.binary.test"))
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-prompt", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(DECODER_METHODS))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    model = random_llama(len(tokenizer), args.seed, args.hidden, args.layers)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    texts, _ = read_sst2(args.data)
    rows = random.Random(args.seed).sample(range(len(texts)), len(texts))
    embedding = model.get_input_embeddings()
    mask = embedding.weight[tokenizer.mask_token_id].detach()
    removal = {"baseline": mask, "times_input": True, "probability": False}
    metrics = {
        "comprehensiveness": make_metric("comprehensiveness", fractions=[0.1, 0.2, 0.5], **removal),
        "sufficiency": make_metric("sufficiency", fractions=[0.1, 0.2, 0.5], **removal),
        "deletion_auc": make_metric("deletion_auc", groups_per_step=1, **removal),
    }
    logits = next_token_logits(model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def settings(items: int, skipped: int) -> dict:
        return {"args": vars(args), "items": items, "skipped_not_round_tripping": skipped,
                "versions": installed_versions(), "torch": torch.__version__}

    records, skipped, used = [], 0, 0
    bar = tqdm(total=args.n, desc="decoder items")
    for row in rows:
        if used == args.n:
            break
        prompt = torch.tensor(tokenizer(texts[row], add_special_tokens=False).input_ids[: args.max_prompt])
        ids = torch.cat([prompt, greedy_continuation(model, prompt, args.steps)])
        if tokenizer(tokenizer.decode(ids), add_special_tokens=False).input_ids != ids.tolist():
            skipped += 1
            continue
        used += 1
        bar.update()
        with torch.no_grad():
            embeddings = embedding(ids.view(1, -1))
        for method in methods:
            bar.set_postfix_str(method)
            for t, scores in enumerate(token_scores(method, model, tokenizer, ids, args.steps)):
                length = scores.numel()
                x = embeddings[:, :length]
                # attributions whose Σ attr·embedding per token is the method's token score
                attributions = scores.view(1, -1, 1) * x / (x * x).sum(-1, keepdim=True)
                groups = FeatureGroups(torch.arange(length).view(length, 1), length)
                target = ids[length].view(1)
                for name, metric in metrics.items():
                    score = metric(logits, x, target, attributions, groups=groups).scores
                    records.append({"sample": f"sst2-{row}-step{t}", "explainer": method, "metric": name,
                                    "score": float(score[0])})
        report(records, out, settings(used, skipped))  # after every item: an interrupted run keeps its items
    bar.close()
    report(records, out, settings(used, skipped))
    print(json.dumps({"items": used, "skipped": skipped}))


if __name__ == "__main__":
    main()
