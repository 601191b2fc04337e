"""Speech-to-text with CTC heads (tiny random Wav2Vec2 / HuBERT / WavLM ``…ForCTC`` saved with a
``Wav2Vec2Processor`` built offline): ``spmm.load(folder)``; the explained waveform is the clip
(the STFT magnitudes through the inverse STFT) and the model's output on it equals the HF model on
the feature extractor's output; the transcript is the processor's own greedy decode; the forward
is bit-identical under the rules; gradient maps equal autograd through ``torch.istft`` and the HF
model; the audit is clean; JSON/HTML/WAV are written; bad input is a one-line error."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile
import torch

import spmm
from spmm.errors import SpmmInputError
from tests.audio.audio_signals import speechlike
from tests.audio.speech_models import RATE, few_draws, save_tiny_ctc
from tests.forward_checks import forward_with_and_without_rules

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

NEW_TOKENS = 3
NORM_EPS = 1e-7
"""The variance epsilon of ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm``."""


@pytest.fixture(scope="module", params=["wav2vec2", "hubert", "wavlm"])
def ctc(request, tmp_path_factory):
    """(spmm model, the HF model and processor loaded independently from the folder)."""
    folder = save_tiny_ctc(tmp_path_factory.mktemp(request.param), request.param)
    model = transformers.AutoModelForCTC.from_pretrained(folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(folder)
    return spmm.load(str(folder)), model, processor


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return speechlike(0.5, RATE, seed=3)


def hf_logits(model, processor, clip):
    inputs = processor(clip.numpy(), sampling_rate=RATE, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


def hf_segments(model, processor, clip):
    """(token ids, first frames, end frames) of the runs of one argmax symbol, blanks dropped,
    computed here from the HF model's logits (not through the tokenizer's offsets)."""
    ids = hf_logits(model, processor, clip)[0].argmax(-1).tolist()
    blank = processor.tokenizer.pad_token_id
    segments, start = [], 0
    for f in range(1, len(ids) + 1):
        if f == len(ids) or ids[f] != ids[start]:
            if ids[start] != blank:
                segments.append((ids[start], start, f))
            start = f
    return segments


def test_loads_as_a_speech_to_text_task(ctc):
    m, model, _ = ctc
    assert type(model).__name__ in [type(m.lm).__name__]
    assert spmm.tasks.task_for(type(model).__name__).name == "speech-to-text"
    assert m.modality.name == "speech-to-text" and m.rules.name == "audio"


def test_explained_input_gives_back_the_clip_and_the_hf_logits(ctc, clip):
    """The explained input is |STFT| (B, T, F); with the clip's phase, its inverse STFT is the clip
    (≤ 1e-5), normalised as the extractor does it equals the extractor's ``input_values`` (≤ 1e-5),
    and the explained model's logits are the HF model's on the extractor's output."""
    m, model, processor = ctc
    prepared = m.prepare(clip)
    assert prepared.inputs.shape == (1, len(clip) // 128 + 1, 257)
    waveform = prepared.model.waveform(prepared.inputs)[0]
    assert (waveform - clip).abs().max() <= 1e-5
    normalised = (waveform - waveform.mean()) / torch.sqrt(waveform.var(unbiased=False) + NORM_EPS)
    expected = processor(clip.numpy(), sampling_rate=RATE, return_tensors="pt")["input_values"][0]
    assert (normalised - expected).abs().max() <= 1e-5 * expected.abs().max()
    with torch.no_grad():
        logits = prepared.model(prepared.inputs)
    reference = hf_logits(model, processor, clip)
    assert (logits - reference).abs().max() <= 1e-4 * reference.abs().max()


def test_transcript_is_the_processors_greedy_decode(ctc, clip):
    m, model, processor = ctc
    ex = m.explain(clip, target=spmm.Continuation(max_new_tokens=NEW_TOKENS), method="gradient")
    ids = hf_logits(model, processor, clip).argmax(-1)
    assert ex.transcript == processor.batch_decode(ids)[0]
    segments = hf_segments(model, processor, clip)[:NEW_TOKENS]
    delimiter = processor.tokenizer.word_delimiter_token
    expected = [" " if t == delimiter else t for t in processor.tokenizer.convert_ids_to_tokens([s[0] for s in segments])]
    assert ex.row_tokens == expected
    assert ex.spectrogram_maps.shape == (NEW_TOKENS, *m.prepare(clip).inputs.shape[1:])
    assert ex.matrix.shape == (NEW_TOKENS, 0)


def test_transcribe_gives_the_whole_transcript_and_predict_points_to_it(ctc, clip):
    m, model, processor = ctc
    assert m.transcribe(clip) == processor.batch_decode(hf_logits(model, processor, clip).argmax(-1))[0]
    with pytest.raises(SpmmInputError, match="transcribe"):
        m.predict(clip)


def test_forward_bit_identical_under_the_rules(ctc, clip):
    m, _, _ = ctc
    prepared = m.prepare(clip)
    plain, under_rules = forward_with_and_without_rules(prepared.model, prepared.inputs, m.rules.for_model(prepared.model))
    assert torch.equal(plain, under_rules)


def test_gradient_maps_equal_autograd_through_istft_and_the_hf_model(ctc, clip):
    """Row t = ∂/∂|X| Σ_{f ∈ segment t} log p_f(token t) of the HF model on the normalised
    inverse STFT of |X|·e^{iφ} (φ: the clip's phase), autograd end to end."""
    m, model, processor = ctc
    ex = m.explain(clip, target=spmm.Continuation(max_new_tokens=NEW_TOKENS), method="gradient")
    window = torch.hann_window(512)
    spectrum = torch.stft(clip, 512, 128, window=window, center=True, pad_mode="reflect", return_complex=True)
    phase = torch.where(spectrum.abs() > 0, spectrum / spectrum.abs().clamp_min(1e-30), torch.ones_like(spectrum))
    for t, (token, start, end) in enumerate(hf_segments(model, processor, clip)[:NEW_TOKENS]):
        magnitude = spectrum.abs().T.clone().requires_grad_(True)
        waveform = torch.istft(magnitude.T * phase, 512, 128, window=window, center=True, length=len(clip))
        normalised = (waveform - waveform.mean()) / torch.sqrt(waveform.var(unbiased=False) + NORM_EPS)
        log_probs = model(input_values=normalised[None]).logits[0].log_softmax(-1)
        (grad,) = torch.autograd.grad(log_probs[start:end, token].sum(), magnitude)
        scale = grad.abs().max()
        assert (ex.spectrogram_maps[t] - grad).abs().max() <= 1e-3 * scale
        assert torch.isclose(ex.row_scores[t], log_probs[start:end, token].sum().detach(), rtol=1e-4)


def test_soft_pullback_shared_and_batched_rows_agree_and_other_methods_run(ctc, clip):
    m, _, _ = ctc
    target = spmm.Continuation(max_new_tokens=2)
    shared = m.explain(clip, target=target, method="soft_pullback", strategy="shared")
    batched = m.explain(clip, target=target, method="soft_pullback", strategy="batched")
    scale = shared.spectrogram_maps.abs().max()
    assert (shared.spectrogram_maps - batched.spectrogram_maps).abs().max() <= 1e-4 * scale
    gradient = m.explain(clip, target=target, method="gradient")
    assert not torch.allclose(shared.spectrogram_maps, gradient.spectrogram_maps)
    ex = m.explain(clip, target=target, method="integrated_gradients", steps=4)
    assert ex.spectrogram_maps.shape == shared.spectrogram_maps.shape and torch.isfinite(ex.spectrogram_maps).all()


def test_sequence_log_prob_is_minus_the_hf_ctc_loss(ctc, clip):
    """SequenceLogProb(text): one row whose score is log p(text | clip) = −(the HF model's own CTC
    loss with ``ctc_loss_reduction="sum"``) on the extractor's output."""
    m, model, processor = ctc
    ex = m.explain(clip, target=spmm.SequenceLogProb("a cat"), method="gradient")
    labels = processor.tokenizer("a cat", return_tensors="pt")["input_ids"]
    inputs = processor(clip.numpy(), sampling_rate=RATE, return_tensors="pt")
    with torch.no_grad():
        loss = model(**inputs, labels=labels).loss
    assert ex.spectrogram_maps.shape[0] == 1 and ex.row_tokens == ["log p(a cat)"]
    assert torch.isclose(ex.row_scores[0], -loss, rtol=1e-4)


def test_audit_clean_under_the_models_rules(ctc, clip):
    m, _, _ = ctc
    report = m.audit(clip)
    ex = m.explain(clip, target=spmm.Continuation(max_new_tokens=1), method="soft_pullback")
    assert list(report.unhandled) == []
    assert set(ex.to_dict()["exact_gradient_ops"]) <= {"log_softmax", "where"}  # the CTC target's own ops


def test_json_html_and_wav_outputs(ctc, clip, tmp_path):
    m, _, _ = ctc
    ex = m.explain(clip, target=spmm.Continuation(max_new_tokens=NEW_TOKENS))
    record = json.loads(ex.save(tmp_path / "x.json").read_text())
    item = record["items"][0]
    assert record["modality"] == "speech-to-text"
    assert np.array(item["extra"]["spectrogram_maps"]).shape == tuple(ex.spectrogram_maps.shape)
    assert item["extra"]["row_tokens"] == ex.row_tokens and item["extra"]["transcript"] == ex.transcript
    assert spmm.Explanation.load(tmp_path / "x.json").item_scores(0).shape == (NEW_TOKENS, 0)
    page = ex.save(tmp_path / "x.html").read_text()
    assert page.count("data:image/png;base64,") == NEW_TOKENS
    assert ".wav" in ex.renderings
    wave, rate = soundfile.read(ex.save(tmp_path / "x.wav"))
    assert rate == RATE and len(wave) == NEW_TOKENS * len(clip) + (NEW_TOKENS - 1) * RATE // 4


def test_a_file_at_another_rate_is_resampled_as_for_the_classifiers(ctc, clip, tmp_path):
    m, _, _ = ctc
    from spmm.modalities.audio.io import resample

    slow = resample(clip, RATE, 8000)
    soundfile.write(tmp_path / "clip8k.wav", slow.numpy(), 8000, subtype="FLOAT")
    from_file = m.explain(str(tmp_path / "clip8k.wav"), target=spmm.Continuation(max_new_tokens=1), method="gradient")
    from_tensor = m.explain(slow, target=spmm.Continuation(max_new_tokens=1), method="gradient",
                            prepare_options={"sample_rate": 8000})
    assert from_file.transcript == from_tensor.transcript
    assert torch.allclose(from_file.spectrogram_maps, from_tensor.spectrogram_maps, atol=1e-4 * from_tensor.spectrogram_maps.abs().max())


def test_bad_input_is_a_one_line_error(ctc, clip):
    m, _, _ = ctc
    cases = [
        lambda: m.explain(torch.zeros(0)),
        lambda: m.explain(None),
        lambda: m.explain(torch.zeros(10)),
        lambda: m.explain([clip, clip]),
        lambda: m.explain(clip, target=3),
        lambda: m.explain(clip, target=spmm.Continuation("a cat")),
        lambda: m.explain(clip, target=spmm.Continuation(max_new_tokens=2), method="gradient", strategy="nope"),
        lambda: m.explain(clip, target=spmm.Continuation(max_new_tokens=2), method="gradient").aggregate("words"),
    ]
    for case in cases:
        with pytest.raises(SpmmInputError) as error:
            case()
        assert "\n" not in str(error.value)


def test_real_speech_clip_end_to_end(ctc, tmp_path):
    from tests.conftest import shared_data_dir

    folder = shared_data_dir() / "audio" / "speech_commands" / "yes"
    if not folder.is_dir():
        pytest.skip("the Speech Commands data is not in ../shared/data")
    m, model, processor = ctc
    path = sorted(folder.glob("*.wav"))[0]
    ex = m.explain(str(path), target=spmm.Continuation(max_new_tokens=2))
    wave, _ = soundfile.read(path, dtype="float32")
    assert ex.transcript == processor.batch_decode(hf_logits(model, processor, torch.from_numpy(wave)).argmax(-1))[0]
    assert torch.isfinite(ex.spectrogram_maps).all() and ex.save(tmp_path / "yes.html").is_file()


def test_cli_explains_a_clip_with_generate(ctc, clip, tmp_path, capsys):
    from spmm.cli import main

    m, _, _ = ctc
    path = tmp_path / "clip.wav"
    soundfile.write(path, clip.numpy(), RATE, subtype="FLOAT")
    assert main(["explain", m.lm.name_or_path, str(path), "--generate", "2", "--method", "gradient",
                 "--out", str(tmp_path / "out"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert sorted(f.rsplit(".", 1)[1] for f in record["files"]) == ["html", "json", "png", "wav"]
    (json_file,) = [f for f in record["files"] if f.endswith(".json")]
    (item,) = json.loads(open(json_file).read())["items"]
    direct = m.explain(str(path), target=spmm.Continuation(max_new_tokens=2), method="gradient")
    assert item["extra"]["row_tokens"] == direct.row_tokens
    assert np.allclose(np.array(item["extra"]["spectrogram_maps"]), direct.spectrogram_maps.numpy(), atol=1e-6)


def test_every_method_runs_or_refuses_in_one_line(ctc, clip):
    """Every method of spmm.list_methods() gives finite maps; the Grad-CAM ones (no convolutional
    feature map over the bins to name) refuse with a one-line error."""
    m, model, _ = ctc
    if type(model).__name__ != "Wav2Vec2ForCTC":
        pytest.skip("the methods are the same code for every CTC family: run once")
    for method in spmm.list_methods():
        if "cam" in method:
            with pytest.raises(SpmmInputError) as error:
                m.explain(clip, target=spmm.Continuation(max_new_tokens=2), method=method, **few_draws(method))
            assert "\n" not in str(error.value)
            continue
        ex = m.explain(clip, target=spmm.Continuation(max_new_tokens=2), method=method, **few_draws(method))
        assert ex.spectrogram_maps.shape[0] == 2 and torch.isfinite(ex.spectrogram_maps).all(), method
