"""How much of the explained logit a decoder's token scores add up to, per method, on the trained tiny-lm.

For each prompt, the greedily predicted next token's logit and the sum over the prompt's tokens of the
signed token scores ⟨a, x⟩ of SoftPullback, the gradient (input × gradient), and LXT's AttnLRP and
CP-LRP (``--lxt``, needs the peers extra).  Conservation would give the logit.

Usage: python benchmarks/peers/decoder_conservation.py --lxt
"""

from __future__ import annotations

import argparse

import torch

import spmm
from spmm.adapters.peers.decoders import NextTokenLogits

PROMPTS = ("the movie was a great", "stocks fell sharply on", "what is the capital of")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lxt", action="store_true", help="add LXT's AttnLRP and CP-LRP (needs the peers extra)")
    args = parser.parse_args()
    m = spmm.load("tiny-lm")
    lm, tokenizer = m.lm.eval(), m.modality.tokenizer
    f = NextTokenLogits(lm).eval()
    embedding = lm.get_input_embeddings()
    header = ["prompt", "logit", "soft_pullback", "gradient"] + (["lxt:attnlrp", "lxt:cp_lrp"] if args.lxt else [])
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for prompt in PROMPTS:
        x = embedding(torch.tensor(tokenizer(prompt).input_ids).view(1, -1)).detach()
        with torch.no_grad():
            logits = f(x)[0]
        y = int(logits.argmax())
        sums = [float((spmm.explain(f, x, torch.tensor([y]), method, rules=m.rules).attributions * x).sum())
                for method in ("soft_pullback", "gradient")]
        if args.lxt:
            from spmm.adapters.peers.lxt_rules import lxt_rules

            for variant in ("attnlrp", "cp_lrp"):
                with torch.enable_grad(), lxt_rules(lm, variant):
                    leaf = x.clone().requires_grad_(True)
                    (grad,) = torch.autograd.grad(f(leaf)[0, y], leaf)
                sums.append(float((grad * x).sum()))
        print(f"| {prompt} | {float(logits[y]):.2f} | " + " | ".join(f"{s:.2f}" for s in sums) + " |")


if __name__ == "__main__":
    main()
