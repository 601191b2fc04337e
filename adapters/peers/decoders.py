"""Per-generated-token attribution on a causal language model: SP, LXT and inseq side by side.

For a prompt and its greedy continuation of T tokens, step t explains the logit of generated token
t from the L0 + t tokens before it (prompt and earlier generated tokens), as inseq does.  Token
scores (L0 + t,):
- ``soft_pullback``: ⟨SP attribution, embedding⟩ per token (``spmm.explain``, text rules);
- ``lxt:attnlrp`` / ``lxt:cp_lrp``: LXT's relevance Σ embedding · gradient under its rules;
- ``inseq:<method>``: ``inseq.load_model(model, method, tokenizer=...).attribute(prompt,
  generated_texts=prompt + continuation, attributed_fn="logit", skip_special_tokens=True)`` and
  inseq's default ``.aggregate()`` (unsigned, normalised per step: what inseq shows its users).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError

from .lxt_rules import lxt_rules
from .versions import peer_version

DECODER_METHODS = ("soft_pullback", "lxt:attnlrp", "lxt:cp_lrp", "inseq:saliency", "inseq:input_x_gradient",
                   "inseq:integrated_gradients")


class NextTokenLogits(nn.Module):
    """embeddings (B, L, D) -> logits of the next token (B, V) of a causal LM (no padding).  A module, not a
    closure, so that ``spmm.explain`` finds the LM's modules and applies the rule set's module rules
    (RMSNorm, gated MLPs) to them."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, embeddings: Tensor) -> Tensor:
        return self.lm(inputs_embeds=embeddings).logits[:, -1]


def next_token_logits(model: nn.Module) -> NextTokenLogits:
    """The :class:`NextTokenLogits` of a causal LM."""
    return NextTokenLogits(model)


def random_llama(vocab_size: int, seed: int, hidden: int, layers: int) -> torch.nn.Module:
    """A seeded random-init ``LlamaForCausalLM`` (eager attention; BOS/EOS/PAD ids of the MiniLM
    word-piece tokenizer: [CLS], [SEP], [PAD]) — the decoder of the peer tables."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=hidden // 32, num_key_value_heads=max(1, hidden // 64),
                         bos_token_id=101, eos_token_id=102, pad_token_id=0, attn_implementation="eager")
    return LlamaForCausalLM(config).eval()


def greedy_continuation(model: nn.Module, prompt_ids: Tensor, steps: int) -> Tensor:
    """prompt_ids (L0,) -> the ``steps`` tokens greedy decoding appends (T,)."""
    with torch.no_grad():
        out = model.generate(prompt_ids.view(1, -1), attention_mask=torch.ones(1, prompt_ids.numel(), dtype=torch.long),
                             max_new_tokens=steps, min_new_tokens=steps, do_sample=False)
    return out[0, prompt_ids.numel():]


def _gradient_scores(method: str, model: nn.Module, ids: Tensor, steps: int) -> list[Tensor]:
    embeddings = model.get_input_embeddings()(ids.view(1, -1)).detach()
    scores = []
    for t in range(steps):
        prefix = embeddings[:, : ids.numel() - steps + t]
        target = ids[ids.numel() - steps + t].view(1)
        if method == "soft_pullback":
            from spmm.explain import explain

            attributions = explain(next_token_logits(model), prefix, target, "soft_pullback", rules="text").attributions
        else:
            with torch.enable_grad(), lxt_rules(model, method.split(":")[1]):
                x = prefix.clone().requires_grad_(True)
                (attributions,) = torch.autograd.grad(next_token_logits(model)(x)[0, target].sum(), x)
        scores.append((attributions * prefix).sum(-1)[0].detach())
    return scores


def _inseq_scores(method: str, model: nn.Module, tokenizer: Any, ids: Tensor, steps: int) -> list[Tensor]:
    import inseq

    peer_version("inseq")
    prompt_length = ids.numel() - steps
    prompt = tokenizer.decode(ids[:prompt_length])
    full = tokenizer.decode(ids)
    if tokenizer(full, add_special_tokens=False).input_ids != ids.tolist():
        raise SpmmInputError("the continuation does not survive decoding and re-tokenising; inseq would explain other tokens")
    attribution_model = inseq.load_model(model, method.split(":")[1], tokenizer=tokenizer)
    out = attribution_model.attribute(prompt, generated_texts=full, attributed_fn="logit", skip_special_tokens=True,
                                      show_progress=False)
    table = out.sequence_attributions[0].aggregate().target_attributions  # (L0 + T, T): token i -> step t
    return [table[: prompt_length + t, t].float() for t in range(steps)]


def token_scores(method: str, model: nn.Module, tokenizer: Any, ids: Tensor, steps: int) -> list[Tensor]:
    """Scores of the tokens before each of the last ``steps`` tokens of ``ids`` (L0 + T,) for generating it:
    a list of T tensors, the t-th of shape (L0 + t,)."""
    if method not in DECODER_METHODS:
        raise SpmmInputError(f"unknown decoder method {method!r}; available: {', '.join(DECODER_METHODS)}")
    if method.startswith("inseq:"):
        return _inseq_scores(method, model, tokenizer, ids, steps)
    return _gradient_scores(method, model, ids, steps)
