"""Speech-to-text models (Whisper; Wav2Vec2, HuBERT, WavLM… CTC heads): every transcript token
explained on the time-frequency bins of the clip.

>>> m = spmm.load("./asr_dir")            # save_pretrained folder with its processor
>>> ex = m.explain("clip.wav", target=spmm.Continuation(max_new_tokens=8))
>>> ex.transcript, ex.row_tokens          # the model's own greedy transcript, its tokens
>>> ex.spectrogram_maps                   # (tokens, T, F): each token's map on the bins
>>> ex.save("x.html"); ex.save("x.wav")   # token strip over the spectrogram; sonified tokens

The clip goes through the audio modality (:class:`~spmm.modalities.audio.modality.AudioModality`:
files at their own rate resampled, tensors at ``prepare_options={"sample_rate": hz}``, excerpts
with ``offset``/``duration``) and the front-end that reproduces the saved feature extractor
(:data:`.audio.FRONT_ENDS`, as for the audio classifiers):

- **CTC** (``…ForCTC`` with a ``Wav2Vec2FeatureExtractor``): explained on STFT magnitudes through the
  phase-locked inverse STFT (:class:`~spmm.modalities.audio.pipeline.WaveformPipeline`).  The
  transcript is the greedy CTC decode of the model's own logits on the feature extractor's output,
  by the tokenizer's own ``decode`` (its ``char_offsets`` give each output token's frames: a run of
  one argmax symbol, repeats merged, blanks dropped).  Row r explains Σ_{frames f of token r}
  log p_f(token r) (the CTC path's log-probability of that token; its frames are where the model
  emits it).  CTC tokens do not see each other, so there is no token matrix.
  ``spmm.SequenceLogProb(text)`` explains log p(text | clip) of CTC (−``ctc_loss``, all alignments).
- **Whisper** (``WhisperForConditionalGeneration``): explained on the log-mel features the
  ``WhisperFeatureExtractor`` makes.  The transcript is the model's greedy ``generate`` on the
  extractor's features; each generated token (or each token of a given ``Continuation(text)``) is
  explained on the log-mel bins and on the decoder tokens before it (a generation matrix row, as
  for sequence-to-sequence text models), one flat input per row: the bins (T·F), then the decoder's
  token embeddings (C·D), of which the decoder prompt's special tokens are held fixed.

Rows share one forward for ``gradient`` and ``soft_pullback`` and run as batched copies for the
other methods (:mod:`spmm.rows`), all through :meth:`spmm.Explainable.explain`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from spmm.adapters.checkpoints import first_line
from spmm.errors import SpmmInputError
from spmm.explain import seeded
from spmm.explainable import Explainable, Prepared
from spmm.explanation import Explanation
from spmm.rows import RowPlan
from spmm.ruleset import get_ruleset
from spmm.targets import Continuation, SequenceLogProb
from spmm.modalities.audio.modality import AudioModality, audio_method_params
from spmm.modalities.audio.transcription import TranscriptionExplanation, no_token_matrix
from spmm.modalities.text.generation import GenerationExplanation

from .audio import FRONT_ENDS
from .generation import Context, LanguageModality, _continuation_ids, row_strategy, split_flat_rows, word_indices
from .preprocessors import saved_processor
from .tasks import register_hf_task, source_name

SPEECH_ARCHITECTURES = ("ForCTC", "WhisperForConditionalGeneration")


# -- CTC --------------------------------------------------------------------------------------
class SegmentLogProb:
    """Score of row r = Σ_{starts_r ≤ f < ends_r} log-softmax(logits[r, f])[token_ids_r]:
    CTC logits (R, L, V) -> (R,)."""

    def __init__(self, token_ids: Tensor, starts: Tensor, ends: Tensor) -> None:
        self.token_ids, self.starts, self.ends = token_ids, starts, ends

    def __call__(self, logits: Any) -> Tensor:
        logits = logits if isinstance(logits, Tensor) else logits.logits
        rows, frames = logits.shape[:2]
        device = logits.device
        index = self.token_ids.to(device).view(rows, 1, 1).expand(rows, frames, 1)
        log_probs = logits.log_softmax(-1).gather(2, index).squeeze(2)
        frame = torch.arange(frames, device=device).view(1, -1)
        inside = (frame >= self.starts.to(device).view(-1, 1)) & (frame < self.ends.to(device).view(-1, 1))
        return torch.where(inside, log_probs, torch.zeros_like(log_probs)).sum(1)

    def take(self, sample_index: Tensor) -> "SegmentLogProb":
        return SegmentLogProb(self.token_ids[sample_index], self.starts[sample_index], self.ends[sample_index])

    def __repr__(self) -> str:
        return f"SegmentLogProb({self.token_ids.tolist()})"


class CTCSequenceLogProb:
    """Score = log p(token_ids | clip) under CTC (−``ctc_loss``, summed over alignments):
    logits (B, L, V) -> (B,); ``blank`` is the blank symbol's id."""

    def __init__(self, token_ids: Tensor, blank: int) -> None:
        self.token_ids, self.blank = token_ids, blank

    def __call__(self, logits: Any) -> Tensor:
        logits = logits if isinstance(logits, Tensor) else logits.logits
        batch, frames = logits.shape[:2]
        log_probs = logits.log_softmax(-1).transpose(0, 1)
        targets = self.token_ids.to(logits.device).view(1, -1).expand(batch, -1)
        lengths = torch.full((batch,), frames, dtype=torch.long)
        target_lengths = torch.full((batch,), targets.shape[1], dtype=torch.long)
        return -nn.functional.ctc_loss(log_probs, targets, lengths, target_lengths, blank=self.blank,
                                       reduction="none", zero_infinity=False)

    def take(self, sample_index: Tensor) -> "CTCSequenceLogProb":
        return self

    def __repr__(self) -> str:
        return f"CTCSequenceLogProb({self.token_ids.tolist()})"


def transcript_explanation(prepared: Prepared, bin_maps: Tensor, text: GenerationExplanation) -> TranscriptionExplanation:
    """The :class:`TranscriptionExplanation` of ``text`` (the token rows) with ``bin_maps`` (R, T, F)
    on the audio of ``prepared.context["audio"]`` (the audio modality's context)."""
    return TranscriptionExplanation.of(text, bin_maps.detach().cpu(), prepared.context["bins"][0].detach().cpu(),
                                       prepared.context["audio"])


class SpeechModality:
    """The hooks a speech-to-text model shares: one clip through the audio modality (``self.audio``)
    and targets bound as transcripts; subclasses set ``audio``, ``lm`` and ``processor``."""

    name = "speech-to-text"

    def prepare_clip(self, model: Any, inputs: Any, **options: Any) -> Prepared:
        """One clip (path or waveform) as :meth:`AudioModality.prepare` makes it; several: a one-line error."""
        if inputs is None or isinstance(inputs, str) and not inputs.strip():
            raise SpmmInputError("a speech-to-text model explains a clip: give an audio file or a waveform "
                                 "(m.explain('clip.wav'))")
        prepared = self.audio.prepare(model, inputs, **options)
        if len(prepared.sources) != 1:
            raise SpmmInputError(f"a speech-to-text model explains one clip at a time; got {len(prepared.sources)}")
        prepared.context["audio"] = dict(prepared.context)
        prepared.context["bins"] = prepared.inputs
        return prepared

    def bind_target(self, target: Any, prepared: Prepared) -> Any:
        """``"top1"``: the transcript (``Continuation()``); Continuation and SequenceLogProb as given."""
        if isinstance(target, str) and target.strip().lower() == "top1":
            return Continuation()
        if not isinstance(target, (Continuation, SequenceLogProb)):
            raise SpmmInputError(f"a speech-to-text model explains spmm.Continuation(...) (its transcript) or "
                                 f"spmm.SequenceLogProb(text) targets; got {target!r}")
        return target

    def waveform(self, prepared: Prepared) -> Tensor:
        """(N,) the explained excerpt."""
        return prepared.context["audio"]["waveform"][0]

    def extractor_input(self, prepared: Prepared, processor: Any) -> dict[str, Tensor]:
        """The saved feature extractor's output on the explained excerpt (what the model itself sees)."""
        extractor = processor.feature_extractor
        batch = extractor(self.waveform(prepared).numpy(), sampling_rate=extractor.sampling_rate, return_tensors="pt")
        device = next(self.lm.parameters()).device
        return {key: value.to(device) for key, value in batch.items()}


class CTCModality(SpeechModality):
    """A CTC model's clip on its STFT magnitudes; rows = the tokens of its greedy transcript."""

    def __init__(self, pipeline: Any, processor: Any, lm: nn.Module) -> None:
        self.audio = AudioModality(pipeline)
        self.processor, self.lm = processor, lm
        self.tokenizer = processor.tokenizer
        self.blank = self.tokenizer.pad_token_id

    def prepare(self, model: Any, inputs: Any, **options: Any) -> Prepared:
        return self.prepare_clip(model, inputs, **options)

    def method_params(self, method: str, inputs: Tensor, model: Any) -> dict[str, Any]:
        return audio_method_params(method)

    def transcribe(self, prepared: Prepared) -> tuple[str, list[str], list[int], list[tuple[int, int]]]:
        """(transcript, each output token as text, its id, its frames (start, end)): the tokenizer's
        own greedy CTC decode of the model's logits on the feature extractor's output."""
        with torch.no_grad():
            logits = self.lm(**self.extractor_input(prepared, self.processor)).logits
        ids = logits[0].argmax(-1).cpu()
        decoded = self.tokenizer.decode(ids, output_char_offsets=True)
        spans = [(int(o["start_offset"]), int(o["end_offset"])) for o in decoded.char_offsets]
        return decoded.text, [o["char"] for o in decoded.char_offsets], [int(ids[start]) for start, _ in spans], spans

    def transcript(self, prepared: Prepared, new_tokens: int | None) -> str:
        """The whole greedy transcript (CTC decodes every frame at once: ``new_tokens`` does not apply)."""
        return self.transcribe(prepared)[0]

    def plan_rows(self, prepared: Prepared, target: Any, method: str, params: dict[str, Any]) -> RowPlan:
        """Continuation: one row per output token of the transcript (the first ``max_new_tokens``
        when given); SequenceLogProb(text): one row, log p(text | clip) under CTC."""
        params, shared, rows_per_pass = row_strategy(params, method)
        if isinstance(target, SequenceLogProb):
            ids = self.tokenizer(target.text, add_special_tokens=False)["input_ids"]
            if not ids:
                raise SpmmInputError(f"the transcript {target.text!r} has no tokens")
            rows, tokens, transcript = CTCSequenceLogProb(torch.tensor(ids), self.blank), [f"log p({target.text})"], target.text
        elif target.text is not None:
            raise SpmmInputError("a CTC model explains its own transcript (Continuation(max_new_tokens=N)); for a given "
                                 "text use spmm.SequenceLogProb(text), log p(text | clip) over every CTC alignment")
        else:
            transcript, tokens, ids, spans = self.transcribe(prepared)
            if target.max_new_tokens is not None:
                tokens, ids, spans = tokens[: target.max_new_tokens], ids[: target.max_new_tokens], spans[: target.max_new_tokens]
            if not ids:
                raise SpmmInputError("the model transcribes nothing in this clip (every frame is blank): there is "
                                     "no token to explain")
            rows = SegmentLogProb(torch.tensor(ids), torch.tensor([s for s, _ in spans]), torch.tensor([e for _, e in spans]))
        prepared.context.update(row_tokens=tokens, transcript=transcript)
        if not shared:
            params = {**self.method_params(method, prepared.inputs, prepared.model), **params}
        count = 1 if isinstance(target, SequenceLogProb) else len(tokens)
        return RowPlan(prepared, rows, params, rows=count, shared=shared, rows_per_pass=rows_per_pass)

    def explanation(self, base: Explanation, prepared: Prepared) -> TranscriptionExplanation:
        """The rows' maps on the STFT magnitudes; no token matrix (CTC tokens do not see each other)."""
        context = prepared.context
        rows = base.attributions.shape[0]
        row_scores = base.scores.detach().cpu()
        text = GenerationExplanation(
            no_token_matrix(rows), prepared.inputs.detach().cpu(), base.target, base.method, base.params, None,
            row_scores.sum().view(1), rules=base.rules, sources=list(prepared.sources), model_name=base.model_name,
            row_scores=row_scores, extras=base.extras, row_tokens=context["row_tokens"], row_columns=[0] * rows,
            continuation=context["transcript"],
        )
        return transcript_explanation(prepared, base.attributions, text)


# -- Whisper ----------------------------------------------------------------------------------
class FeaturesAndTokens(nn.Module):
    """Whisper on one flat input per row: (B, T·F + C·D) -> decoder logits (B, C, V).

    The first T·F values are the log-mel features (T, F) (handed to the encoder as the (F, T)
    ``input_features`` it takes); the rest the decoder's token embeddings (C, D), where positions
    not ``free`` (C,) take the embeddings of ``decoder_ids`` (1, C) in the model's current table.
    """

    def __init__(self, lm: nn.Module, bins: tuple[int, int], decoder_ids: Tensor, free: Tensor) -> None:
        super().__init__()
        self.lm, self.bins = lm, bins
        self.decoder_ids = decoder_ids
        self.free = free.view(1, -1, 1)
        self.training = lm.training

    def forward(self, x: Tensor) -> Tensor:
        rows, n = x.shape[0], self.bins[0] * self.bins[1]
        features = x[:, :n].reshape(rows, *self.bins)
        table = self.lm.get_decoder().get_input_embeddings()
        with torch.no_grad():
            fixed = table(self.decoder_ids)
        embeddings = x[:, n:].reshape(rows, *fixed.shape[1:]).to(fixed.dtype)
        free = self.free.to(fixed.dtype)
        mixed = embeddings * free + fixed * (1 - free)
        return self.lm(input_features=features.transpose(1, 2).to(fixed.dtype), decoder_inputs_embeds=mixed,
                       use_cache=False).logits


class WhisperModality(SpeechModality, LanguageModality):
    """Whisper's clip on its log-mel features, with the hooks of a sequence-to-sequence language
    model on the decoder's tokens (the module docstring)."""

    def __init__(self, pipeline: Any, processor: Any, max_length: int, *, lm: nn.Module) -> None:
        LanguageModality.__init__(self, processor.tokenizer, max_length, lm=lm, encoder_decoder=True)
        self.audio = AudioModality(pipeline)
        self.processor = processor

    def prepare(self, model: Any, inputs: Any, **options: Any) -> Prepared:
        return self.prepare_clip(model, inputs, **options)

    def method_params(self, method: str, inputs: Tensor, model: Any) -> dict[str, Any]:
        """No scale defaults: the flat input mixes log-mel bins and embeddings (give noise scales explicitly)."""
        return {}

    def bind_target(self, target: Any, prepared: Prepared) -> Any:
        return SpeechModality.bind_target(self, target, prepared)

    def plan_rows(self, prepared: Prepared, target: Any, method: str, params: dict[str, Any]) -> RowPlan | None:
        return LanguageModality.plan_rows(self, prepared, target, method, params)

    def row_prepared(self, prepared: Prepared, target: Continuation | SequenceLogProb, seed: int | None) -> Prepared:
        """The rows' input: the log-mel bins (T·F) then the decoder's embeddings (C·D), one flat (1, N) vector."""
        context = self.decoder_context(prepared, target, seed)
        device = next(self.lm.parameters()).device
        with torch.no_grad():
            embeddings = self.lm.get_decoder().get_input_embeddings()(context.input_ids.to(device)).detach()
        bins = prepared.inputs
        model = FeaturesAndTokens(self.lm, tuple(bins.shape[1:]), context.input_ids.to(device), ~context.fixed[0].to(device))
        flat = torch.cat([bins.flatten(1), embeddings.flatten(1).to(bins.dtype)], dim=1)
        return Prepared(flat, model, list(prepared.sources),
                        {**prepared.context, "generation": context, "embeddings": embeddings})

    def decoder_context(self, prepared: Prepared, target: Continuation | SequenceLogProb, seed: int | None) -> Context:
        """The decoder's prompt (the init tokens ``generate`` starts from) with the transcript:
        generated greedily on the feature extractor's features, or the given text."""
        tokenizer = self.tokenizer
        features = self.extractor_input(prepared, self.processor)["input_features"]
        text = getattr(target, "text", None)
        if text is not None:
            prompt_ids, _ = self.transcribe(features, 1, seed)
            new_ids = _continuation_ids(tokenizer, text)
        else:
            prompt_ids, new_ids = self.transcribe(features, target.new_tokens, seed)
        tokens = len(prompt_ids) + len(new_ids)
        if tokens > self.max_length:
            raise SpmmInputError(f"the decoder prompt and transcript are {tokens} tokens; the decoder takes at most "
                                 f"{self.max_length} (ask for fewer tokens)")
        transcript = text if isinstance(text, str) else tokenizer.decode(new_ids, skip_special_tokens=True)
        special = set(tokenizer.all_special_ids)
        ids = prompt_ids + new_ids
        words = [None] * len(prompt_ids) + word_indices(tokenizer, transcript, new_ids, False, 0)
        p = len(prompt_ids)
        return Context(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long),
                       torch.tensor([[i in special for i in ids]]), torch.tensor(new_ids),
                       torch.arange(p - 1, p - 1 + len(new_ids)), [p + t for t in range(len(new_ids))], words, p,
                       tokenizer.decode(prompt_ids), transcript)

    def transcript(self, prepared: Prepared, new_tokens: int | None) -> str:
        """The greedy transcript of at most ``new_tokens`` tokens (default: ``Continuation``'s)."""
        return self.decoder_context(prepared, Continuation(max_new_tokens=new_tokens), None).continuation

    def transcribe(self, features: Tensor, new_tokens: int, seed: int | None) -> tuple[list[int], list[int]]:
        """(decoder prompt ids, generated ids) of the model's greedy ``generate`` on ``features``."""
        if new_tokens >= self.max_length:
            raise SpmmInputError(f"the decoder takes at most {self.max_length} tokens, its prompt included; ask for "
                                 f"fewer than {new_tokens} new tokens")
        try:
            with seeded(seed), torch.no_grad():
                out = self.lm.generate(features, max_new_tokens=new_tokens, do_sample=False, num_beams=1,
                                       return_dict_in_generate=True, output_scores=True)
        except ValueError as error:
            raise SpmmInputError(f"the model's generate refuses this request: {first_line(error)}") from None
        sequence = out.sequences[0].tolist()
        generated = len(out.scores)
        return sequence[: len(sequence) - generated], sequence[len(sequence) - generated:]

    def explanation(self, base: Explanation, prepared: Prepared) -> TranscriptionExplanation:
        """The rows' maps on the log-mel bins and their generation matrix on the decoder's tokens."""
        context = prepared.context
        bins, embeddings = context["bins"], context["embeddings"]
        bin_maps, token_attributions = split_flat_rows(base.attributions, bins, embeddings)
        text_base = dataclasses.replace(base, attributions=token_attributions, inputs=embeddings)
        text = LanguageModality.explanation(self, text_base, Prepared(embeddings, prepared.model, prepared.sources, context))
        return transcript_explanation(prepared, bin_maps, text)


# -- the task ---------------------------------------------------------------------------------
@dataclasses.dataclass(repr=False)
class SpeechToTextModel(Explainable):
    """A speech-to-text model: ``m.explain(clip, target=spmm.Continuation(max_new_tokens=N))`` gives
    a :class:`TranscriptionExplanation`; ``lm`` is the ``transformers`` model."""

    lm: Any = None

    @property
    def processor(self) -> Any:
        return self.modality.processor

    def transcribe(self, inputs: Any, max_new_tokens: int | None = None, **options: Any) -> str:
        """The model's greedy transcript of one clip (no explanation); ``options`` as ``prepare_options``."""
        return self.modality.transcript(self.prepare(inputs, **options), max_new_tokens)

    def predict(self, inputs: Any, k: int = 5, **options: Any) -> list:
        raise SpmmInputError("a speech-to-text model has no classes to predict: m.transcribe(clip) gives its transcript")

    def audit(self, inputs: Any, target: Any = "top1", **options: Any):
        """:func:`spmm.audit` of the rows' model on one clip with the transcript of ``target``,
        under this model's rule set."""
        from spmm.audit import audit

        prepared = self.prepare(inputs, **options)
        target = self.modality.bind_target(target, prepared)
        plan = self.modality.plan_rows(prepared, target, "soft_pullback", {})
        rules = self.rules.for_model(plan.prepared.model)
        return audit(plan.prepared.model, plan.prepared.inputs, temperatures=rules.temperatures,
                     module_rules=rules.module_rules)


@register_hf_task("speech-to-text", SPEECH_ARCHITECTURES)
def load_speech_to_text(model: nn.Module, source: Any, processor: Any = None, rules: Any = "audio") -> SpeechToTextModel:
    """A speech-to-text model (CTC head or Whisper): transcript tokens explained on time-frequency bins."""
    processor = saved_processor(source, processor, model, ("feature_extractor", "tokenizer"), "speech-to-text")
    extractor = processor.feature_extractor
    kind = type(extractor).__name__
    whisper = type(model).__name__ == "WhisperForConditionalGeneration"
    expected = "WhisperFeatureExtractor" if whisper else "Wav2Vec2FeatureExtractor"
    if kind != expected:
        raise SpmmInputError(f"{type(model).__name__} is explained through a {expected}; its processor has a {kind}")
    name = source_name(source, model)
    pipeline = FRONT_ENDS[kind](model, extractor, name)
    if whisper:
        modality: Any = WhisperModality(pipeline, processor, model.config.max_target_positions, lm=model)
    else:
        modality = CTCModality(pipeline, processor, model)
    ruleset = get_ruleset(rules) if isinstance(rules, str) else rules
    return SpeechToTextModel(model, modality, ruleset, None, name, lm=model)
