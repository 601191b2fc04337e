"""Language models: causal LMs (GPT-2, GPT-NeoX, Llama, Mistral, Qwen2, Gemma, Phi…) and
sequence-to-sequence models (T5, BART, Marian…).

``m.explain(prompt)`` explains the next token (``"top1"``, a token id or string,
``spmm.Contrast("are", "is")``) on the prompt's words, as a :class:`TextExplanation`.
``m.explain(prompt, target=spmm.Continuation(...))`` generates greedily (or takes the given
text) and explains every continuation token on the prompt (or source) and the tokens before
it; ``spmm.SequenceLogProb(text)`` explains log p(text | prompt).  Both give a
:class:`GenerationExplanation` (tokens × tokens).

Both go through :meth:`spmm.Explainable.explain`: :class:`LanguageModality` binds token targets,
plans the rows of a continuation (:class:`spmm.rows.RowPlan`) and wraps them.  How the matrix is
computed: the context (prompt + continuation; for seq2seq source + decoder input) is embedded
once, and row r's target is the logit (or log-probability) of token r at its own position
(:mod:`spmm.rows` runs the rows).  ``strategy="shared"`` (the default for ``gradient`` and ``soft_pullback``):
one forward of the sequence and one backward per row (``retain_graph``); ``"batched"`` (every
other method): R copies of the sequence in one batch through :func:`spmm.explain`, one forward
and one backward, ``rows_per_pass`` rows at a time (memory).  Causal attention makes each row's
score depend on its prefix only, so row r equals the explanation of the next token of the
prefix alone (tested for both strategies).  Costs: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import copy
import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from spmm.adapters.text.targets import NextTokenLogit, last_positions, next_token_id
from spmm.errors import SpmmInputError
from spmm.explain import seeded
from spmm.explainable import Explainable, Prepared
from spmm.explanation import Explanation
from spmm.load import register_model
from spmm.methods.registry import get_method
from spmm.rows import SHARED_FORWARD_METHODS, RowPlan
from spmm.ruleset import get_ruleset
from spmm.targets import Continuation, Contrast, SequenceLogProb
from spmm.modalities.text import EmbeddingModel, HFOutput, encode_texts, token_scores
from spmm.modalities.text.batch import token_limit, token_words_of
from spmm.modalities.text.explanation import default_score
from spmm.modalities.text.generation import GenerationExplanation, undefined_cells
from spmm.modalities.text.modality import TextModality

from .tasks import register_hf_task, source_name
from .text import load_tokenizer

CAUSAL_LM_ARCHITECTURES = ("ForCausalLM", "LMHeadModel")
SEQ2SEQ_ARCHITECTURES = (
    "T5ForConditionalGeneration", "MT5ForConditionalGeneration", "BartForConditionalGeneration",
    "MBartForConditionalGeneration", "MarianMTModel", "PegasusForConditionalGeneration",
)
ROWS_PER_PASS = 32
"""Default number of explained rows per forward/backward batch (``strategy="batched"``)."""
ROW_STRATEGIES = ("auto", "batched", "shared")


# -- bodies: (embeddings (B, L, D), attention_mask (B, L)) -> logits ----------------------------
class NextTokenBody(nn.Module):
    """A causal LM's next-token logits at each row's last real token: (B, V)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.body = HFOutput(model)
        self.train(model.training)

    def get_input_embeddings(self) -> nn.Module:
        return self.body.get_input_embeddings()

    def forward(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        logits = self.body(embeddings, attention_mask)
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, last_positions(attention_mask).to(logits.device)]


class Seq2SeqBody(nn.Module):
    """An encoder–decoder on one concatenated sequence: the first ``source_length`` positions
    are the encoder's input embeddings, the rest the decoder's: decoder logits (B, L − S, V).
    With ``start_only`` the decoder gets its start token alone: first-token logits (B, V)."""

    def __init__(self, model: nn.Module, source_length: int | None = None, start_only: bool = False) -> None:
        super().__init__()
        self.model, self.source_length, self.start_only = model, source_length, start_only
        self.train(model.training)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def forward(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        if self.start_only:
            start = torch.full((embeddings.shape[0], 1), decoder_start(self.model), device=embeddings.device)
            return self.model(inputs_embeds=embeddings, attention_mask=attention_mask, decoder_input_ids=start).logits[:, 0]
        s = self.source_length
        return self.model(
            inputs_embeds=embeddings[:, :s], attention_mask=attention_mask[:, :s],
            decoder_inputs_embeds=embeddings[:, s:], decoder_attention_mask=attention_mask[:, s:],
        ).logits


def decoder_start(model: nn.Module) -> int:
    """The decoder's start token id (``decoder_start_token_id`` of the generation or model config)."""
    for config in (getattr(model, "generation_config", None), model.config):
        start = getattr(config, "decoder_start_token_id", None)
        if start is not None:
            return int(start)
    raise SpmmInputError(f"{type(model).__name__} names no decoder_start_token_id in its config")


# -- row targets ------------------------------------------------------------------------------
class NextTokenLogProb(NextTokenLogit):
    """Score = log-softmax of ``token_ids`` (B,) at ``positions`` (B,) of logits (B, L, V)."""

    def __call__(self, logits: Any) -> Tensor:
        logits = logits if isinstance(logits, Tensor) else logits.logits
        rows = torch.arange(logits.shape[0], device=logits.device)
        picked = logits[rows, self.positions.to(logits.device)]
        return picked.log_softmax(-1).gather(1, self.token_ids.to(logits.device).view(-1, 1)).squeeze(1)

    def take(self, sample_index: Tensor) -> "NextTokenLogProb":
        return NextTokenLogProb(self.token_ids[sample_index], self.positions[sample_index])


class SequenceLogProbScore:
    """Score = Σ_t log-softmax(logits[:, positions_t])[token_ids_t]: logits (B, L, V) -> (B,)."""

    def __init__(self, token_ids: Tensor, positions: Tensor) -> None:
        self.token_ids, self.positions = token_ids, positions

    def __call__(self, logits: Any) -> Tensor:
        logits = logits if isinstance(logits, Tensor) else logits.logits
        picked = logits[:, self.positions.to(logits.device)].log_softmax(-1)
        index = self.token_ids.to(logits.device).view(1, -1, 1).expand(logits.shape[0], -1, 1)
        return picked.gather(2, index).squeeze(2).sum(1)

    def __repr__(self) -> str:
        return f"SequenceLogProbScore({self.token_ids.tolist()})"


# -- the context of one generation explanation ------------------------------------------------
@dataclasses.dataclass
class Context:
    """One prompt with its continuation, as the columns of the matrix.

    input_ids, attention_mask: (1, C); fixed: (1, C) bool, special tokens (held fixed);
    continuation_ids: (T,) explained tokens; logit_positions: (T,) where the model's logits
    predict them; row_columns: (T,) their own columns; words: (C,) word index or None;
    prompt_columns: the prompt's (source's) columns; source_length: encoder columns (seq2seq).
    """

    input_ids: Tensor
    attention_mask: Tensor
    fixed: Tensor
    continuation_ids: Tensor
    logit_positions: Tensor
    row_columns: list[int]
    words: list[int | None]
    prompt_columns: int
    prompt: str
    continuation: str
    source_length: int | None = None


def _continuation_ids(tokenizer: Any, text: str | tuple[int, ...]) -> list[int]:
    """The continuation's token ids: given ids (checked against the vocabulary), or the text tokenised."""
    if isinstance(text, tuple):
        bad = [i for i in text if not 0 <= i < len(tokenizer)]
        if bad:
            raise SpmmInputError(f"continuation token id {bad[0]} is outside the vocabulary (size {len(tokenizer)})")
        return list(text)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise SpmmInputError(f"the continuation {text!r} has no tokens")
    return ids


def word_indices(tokenizer: Any, text: str, ids: list[int], add_special_tokens: bool, first_word: int) -> list[int | None]:
    """Word index of each token of ``ids`` (the tokens of ``text``; special tokens: None): the words
    of ``text`` from its tokens' character offsets (:func:`~spmm.modalities.text.batch.token_words_of`,
    the words of every text explanation) shifted by ``first_word`` when tokenising ``text`` reproduces
    ``ids`` (trailing special tokens such as a generated EOS aside), else one word per token."""
    special = set(tokenizer.all_special_ids)
    kept = len(ids)
    while kept and ids[kept - 1] in special:
        kept -= 1
    text_ids, text_words = token_words_of(tokenizer, text, add_special_tokens)
    if text_ids[:kept] == ids[:kept]:
        words = [None if w is None else first_word + w for w in text_words[:kept]]
    else:
        words = [first_word + k for k in range(kept)]
    return [None if i in special else w for i, w in zip(ids, words + [None] * (len(ids) - kept))]


def split_flat_rows(attributions: Tensor, first: Tensor, embeddings: Tensor) -> tuple[Tensor, Tensor]:
    """Rows (R, P + C·D) of a flat input made of ``first`` (1, ...) with P values, then token
    ``embeddings`` (1, C, D) -> (R, ...) and (R, C, D)."""
    rows, n = attributions.shape[0], first[0].numel()
    return attributions[:, :n].reshape(rows, *first.shape[1:]), attributions[:, n:].reshape(rows, *embeddings.shape[1:])


def row_strategy(params: dict[str, Any], method: str) -> tuple[dict[str, Any], bool, int]:
    """(params without ``strategy``/``rows_per_pass``, whether rows share one forward, rows per pass)."""
    params = dict(params)
    rows_per_pass, strategy = params.pop("rows_per_pass", ROWS_PER_PASS), params.pop("strategy", "auto")
    if not isinstance(rows_per_pass, int) or isinstance(rows_per_pass, bool) or rows_per_pass < 1:
        raise SpmmInputError(f"rows_per_pass must be a positive integer, got {rows_per_pass!r}")
    if strategy not in ROW_STRATEGIES:
        raise SpmmInputError(f"strategy must be one of {ROW_STRATEGIES}, got {strategy!r}")
    if strategy == "shared" and method not in SHARED_FORWARD_METHODS:
        raise SpmmInputError(f"strategy='shared' serves {SHARED_FORWARD_METHODS}; {method} needs 'batched'")
    get_method(method)
    shared = strategy == "shared" or (strategy == "auto" and method in SHARED_FORWARD_METHODS
                                      and not set(params) - {"seed"})
    return params, shared, rows_per_pass


class LanguageModality(TextModality):
    """The text modality of a causal or sequence-to-sequence language model, with the hooks of
    :meth:`spmm.Explainable.explain` that explain continuations (see the module docstring).

    lm: the ``transformers`` model; encoder_decoder: whether it is a sequence-to-sequence model.
    """

    def __init__(self, tokenizer: Any, max_length: int | None = None, add_special_tokens: bool = True, *,
                 lm: nn.Module, encoder_decoder: bool = False) -> None:
        super().__init__(tokenizer, max_length, add_special_tokens)
        self.lm, self.encoder_decoder = lm, encoder_decoder

    # -- hooks ------------------------------------------------------------------------------
    def bind_target(self, target: Any, prepared: Prepared) -> Any:
        """Token strings (and the sides of a :class:`Contrast`) as token ids; continuations as given."""
        return target if isinstance(target, (Continuation, SequenceLogProb)) else self.token_target(target)

    def token_target(self, target: Any) -> Any:
        """Token strings (and the sides of a :class:`Contrast`) as token ids; other targets unchanged."""
        if isinstance(target, Contrast):
            return Contrast(self.token_target(target.target), self.token_target(target.foil))
        if isinstance(target, str) and target.strip().lower() != "top1":
            return next_token_id(self.tokenizer, target)
        return target

    def plan_rows(self, prepared: Prepared, target: Any, method: str, params: dict[str, Any]) -> RowPlan | None:
        """Continuation and SequenceLogProb targets: the rows of the one prompt's continuation, on
        the context embedded once (``strategy`` and ``rows_per_pass`` in ``params``); None for
        next-token targets (the prompts' words explained as they are)."""
        params = dict(params)
        if not isinstance(target, (Continuation, SequenceLogProb)):
            if "rows_per_pass" in params or "strategy" in params:
                raise SpmmInputError("rows_per_pass and strategy apply to Continuation and SequenceLogProb targets only")
            return None
        if len(prepared.sources) != 1:
            raise SpmmInputError(f"{type(target).__name__} explains one prompt (a string) at a time; "
                                 f"got {len(prepared.sources)}")
        params, shared, rows_per_pass = row_strategy(params, method)
        row_prepared = self.row_prepared(prepared, target, params.get("seed"))
        context = row_prepared.context["generation"]
        if isinstance(target, SequenceLogProb):
            rows = SequenceLogProbScore(context.continuation_ids, context.logit_positions)
            row_columns = [context.input_ids.shape[1]]
        else:
            rows = (NextTokenLogProb if target.score == "logprob" else NextTokenLogit)(
                context.continuation_ids, context.logit_positions)
            row_columns = context.row_columns
        if not shared:
            params = {**self.method_params(method, row_prepared.inputs, row_prepared.model), **params}
        count = 1 if isinstance(target, SequenceLogProb) else context.continuation_ids.numel()
        row_prepared.context.update(target=target, row_columns=list(row_columns))
        return RowPlan(row_prepared, rows, params, rows=count, shared=shared, rows_per_pass=rows_per_pass)

    def row_prepared(self, prepared: Prepared, target: Continuation | SequenceLogProb, seed: int | None) -> Prepared:
        """The rows' input: the one prompt with its continuation (:meth:`context`) embedded once,
        (1, C, D), through the model on the whole context; ``context["generation"]`` is the :class:`Context`."""
        context = self.context(prepared.sources[0], target, seed)
        device = next(self.lm.parameters()).device
        embeddings = self.embed_context(context)
        mask, fixed = context.attention_mask.to(device), context.fixed.to(device)
        model = EmbeddingModel(self.body(context), mask, embeddings, ~fixed)
        return Prepared(embeddings, model, [context.prompt], {"generation": context})

    def explanation(self, base: Explanation, prepared: Prepared) -> Explanation:
        """A :class:`GenerationExplanation` of planned rows (tokens × tokens); else the text explanation."""
        if "generation" not in prepared.context:
            return super().explanation(base, prepared)
        context, target = prepared.context["generation"], prepared.context["target"]
        row_columns, embeddings = prepared.context["row_columns"], prepared.inputs
        kind = default_score(base.method)
        attributions = base.attributions
        matrix = token_scores(attributions, embeddings.expand(attributions.shape[0], -1, -1), kind).detach()
        matrix = matrix.masked_fill(undefined_cells(*matrix.shape, row_columns).to(matrix.device), float("nan"))
        row_scores = base.scores.detach().cpu()
        ids = context.input_ids[0].tolist()
        tokens = [self.tokenizer.decode([i]) for i in ids]
        word_count = max([w for w in context.words if w is not None], default=-1) + 1
        word_texts = [self.tokenizer.decode([i for i, w in zip(ids, context.words) if w == word]).strip()
                      for word in range(word_count)]
        row_tokens = ([self.tokenizer.decode([i]) for i in context.continuation_ids.tolist()]
                      if isinstance(target, Continuation) else [f"log p({context.continuation})"])
        return GenerationExplanation(
            matrix.unsqueeze(0).cpu(), embeddings.cpu(), target, base.method, base.params, None, row_scores.sum().view(1),
            rules=base.rules, sources=[context.prompt], model_name=base.model_name, row_scores=row_scores, extras=base.extras,
            context_tokens=tokens, row_tokens=row_tokens, row_columns=list(row_columns), context_words=context.words,
            word_texts=word_texts, prompt_columns=context.prompt_columns, prompt=context.prompt,
            continuation=context.continuation, score=kind,
        )

    # -- building the context --------------------------------------------------------------
    def context(self, prompt: str, target: Continuation | SequenceLogProb, seed: int | None) -> Context:
        """The prompt's tokens and the continuation (generated greedily, or the given text)."""
        tokenizer, modality = self.tokenizer, self
        batch = encode_texts(tokenizer, prompt, max_length=modality.max_length, on_overflow="error",
                             add_special_tokens=modality.add_special_tokens)
        device = next(self.lm.parameters()).device
        prompt_ids = batch.input_ids[0].tolist()
        prompt_words = list(batch.word_ids[0])
        first_word = max([w for w in prompt_words if w is not None], default=-1) + 1
        text = getattr(target, "text", None)
        if text is not None:
            new_ids = _continuation_ids(tokenizer, text)
        else:
            new_ids = self.generate(batch.input_ids.to(device), batch.attention_mask.to(device), target.new_tokens, seed)
        continuation = text if isinstance(text, str) else tokenizer.decode(new_ids, skip_special_tokens=True)
        special = set(tokenizer.all_special_ids)
        if self.encoder_decoder:
            start = decoder_start(self.lm)
            decoder_ids = [start] + new_ids
            new_words = word_indices(tokenizer, continuation, new_ids, False, first_word)
            ids = prompt_ids + decoder_ids
            words = prompt_words + [None] + new_words
            fixed = batch.special_mask[0].tolist() + [True] + [i in special for i in new_ids]
            s = len(prompt_ids)
            positions = list(range(len(new_ids)))
            row_columns = [s + 1 + t for t in range(len(new_ids))]
            return Context(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), torch.tensor([fixed]),
                           torch.tensor(new_ids), torch.tensor(positions), row_columns, words, s, prompt,
                           continuation, source_length=s)
        p = len(prompt_ids)
        ids = prompt_ids + new_ids
        words = word_indices(tokenizer, prompt + continuation, ids, modality.add_special_tokens, 0)
        if words[:p] != prompt_words:
            words = prompt_words + [None if i in special else first_word + k for k, i in enumerate(new_ids)]
        fixed = batch.special_mask[0].tolist() + [i in special for i in new_ids]
        return Context(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), torch.tensor([fixed]),
                       torch.tensor(new_ids), torch.arange(p - 1, p - 1 + len(new_ids)),
                       [p + t for t in range(len(new_ids))], words, p, prompt, continuation)

    def generate(self, input_ids: Tensor, attention_mask: Tensor, new_tokens: int, seed: int | None) -> list[int]:
        """Greedy continuation (``do_sample=False``) of one prompt: the new token ids."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with seeded(seed), torch.no_grad():
            out = self.lm.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=new_tokens,
                                   do_sample=False, num_beams=1, pad_token_id=pad)
        new = out[0, 1:] if self.encoder_decoder else out[0, input_ids.shape[1]:]
        return new.tolist()

    def body(self, context: Context) -> nn.Module:
        """The model on the whole context: logits (B, L, V) (decoder logits for seq2seq)."""
        return Seq2SeqBody(self.lm, context.source_length) if self.encoder_decoder else HFOutput(self.lm)

    def embed_context(self, context: Context) -> Tensor:
        """(1, C, D) token embeddings of the context (the decoder's own table for decoder tokens)."""
        device = next(self.lm.parameters()).device
        ids = context.input_ids.to(device)
        with torch.no_grad():
            if not self.encoder_decoder:
                return self.lm.get_input_embeddings()(ids).detach()
            s = context.source_length
            source = self.lm.get_input_embeddings()(ids[:, :s])
            target = self.lm.get_decoder().get_input_embeddings()(ids[:, s:])
            return torch.cat([source, target], dim=1).detach()


@dataclasses.dataclass(repr=False)
class LanguageModel(Explainable):
    """A causal or sequence-to-sequence language model: next-token explanations of the prompts'
    words, and continuations (``spmm.Continuation`` / ``spmm.SequenceLogProb`` targets, one prompt:
    a :class:`GenerationExplanation`), both through :meth:`spmm.Explainable.explain` and the hooks
    of its :class:`LanguageModality`.  ``strategy`` (``"auto"``, ``"shared"``, ``"batched"``) and
    ``rows_per_pass`` are keywords of continuation explanations (see the module docstring).

    lm: the ``transformers`` model; encoder_decoder: whether it is a sequence-to-sequence model.
    ``model`` (what the modality's inputs go through) gives the next (first) token's logits (B, V).
    """

    lm: Any = None
    encoder_decoder: bool = False

    @property
    def tokenizer(self) -> Any:
        return self.modality.tokenizer


# -- task loaders -----------------------------------------------------------------------------
def language_tokenizer(model: nn.Module, source: Any, tokenizer: Any) -> Any:
    """The model's tokenizer (from ``source`` unless given), padding on the right with a pad
    token (the EOS token when it has none); a given tokenizer is copied, never changed."""
    tokenizer = copy.deepcopy(tokenizer) if tokenizer is not None else load_tokenizer(source, None, model)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise SpmmInputError("the tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def adds_trailing_special(tokenizer: Any) -> bool:
    """Whether the tokenizer appends a special token (such as EOS) after a text."""
    mask = tokenizer("a", return_special_tokens_mask=True)["special_tokens_mask"]
    return bool(mask) and bool(mask[-1])


@register_hf_task("causal-lm", CAUSAL_LM_ARCHITECTURES)
def load_causal_lm(model: nn.Module, source: Any, tokenizer: Any = None, rules: Any = "text",
                   max_length: int | None = None) -> LanguageModel:
    """A causal LM: next-token and continuation explanations (see the module docstring)."""
    tokenizer = language_tokenizer(model, source, tokenizer)
    modality = LanguageModality(tokenizer, token_limit(tokenizer, model.config, max_length),
                                add_special_tokens=not adds_trailing_special(tokenizer), lm=model)
    return language_model(model, modality, False, source_name(source, model), rules)


@register_hf_task("seq2seq", SEQ2SEQ_ARCHITECTURES)
def load_seq2seq(model: nn.Module, source: Any, tokenizer: Any = None, rules: Any = "text",
                 max_length: int | None = None) -> LanguageModel:
    """An encoder–decoder: the first target token on the source words, or continuations on the
    source and the target prefix."""
    tokenizer = language_tokenizer(model, source, tokenizer)
    modality = LanguageModality(tokenizer, token_limit(tokenizer, model.config, max_length), lm=model,
                                encoder_decoder=True)
    return language_model(model, modality, True, source_name(source, model), rules)


def language_model(lm: nn.Module, modality: LanguageModality, encoder_decoder: bool, name: str, rules: Any) -> LanguageModel:
    """The :class:`LanguageModel` of ``lm``; its labels are the vocabulary's tokens as text."""
    body = Seq2SeqBody(lm, start_only=True) if encoder_decoder else NextTokenBody(lm)
    tokenizer = modality.tokenizer
    every_id = [[i] for i in range(len(tokenizer))]
    labels = (tokenizer.backend_tokenizer.decode_batch(every_id, skip_special_tokens=False)
              if getattr(tokenizer, "backend_tokenizer", None) is not None else tokenizer.batch_decode(every_id))
    ruleset = get_ruleset(rules) if isinstance(rules, str) else rules
    return LanguageModel(body, modality, ruleset, labels, name, lm=lm, encoder_decoder=encoder_decoder)


TINY_LM = "tiny-lm"
"""The causal LM trained by ``examples/train_tiny_lm.py``, shipped in ``spmm/adapters/data/tiny-lm``."""


def tiny_lm_folder() -> Path:
    """The shipped tiny LM's ``save_pretrained`` folder (weights, config, tokenizer, training.json)."""
    return Path(str(resources.files("spmm.adapters") / "data" / TINY_LM))


@register_model(TINY_LM, "text", "small Llama-architecture causal LM trained here on SST-2, AG News and TREC "
                "text (examples/train_tiny_lm.py); generation attribution end to end")
def load_tiny_lm(**options: Any) -> LanguageModel:
    from .resolver import load_pretrained

    folder = tiny_lm_folder()
    if not (folder / "config.json").is_file():
        raise SpmmInputError(f"the tiny LM is not in {folder}; train it with examples/train_tiny_lm.py")
    return dataclasses.replace(load_pretrained(str(folder), **options), name=TINY_LM)
