"""Speech-to-text with Whisper (a tiny random ``WhisperForConditionalGeneration`` saved with a
``WhisperProcessor`` built offline): ``spmm.load(folder)``; the explained log-mel bins equal the
feature extractor's ``input_features``; the transcript is the model's own greedy ``generate``; the
forward is bit-identical under the rules and equal to the HF model; gradient maps (bins) and
matrix rows (decoder tokens) equal autograd on the HF model; the audit is clean; JSON/HTML/WAV are
written; bad input is a one-line error."""

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
from tests.audio.speech_models import RATE, few_draws, save_tiny_whisper
from tests.forward_checks import forward_with_and_without_rules

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

NEW_TOKENS = 3


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """(spmm model, the HF model and processor loaded independently from the folder)."""
    folder = save_tiny_whisper(tmp_path_factory.mktemp("whisper"))
    model = transformers.WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(folder)
    return spmm.load(str(folder)), model, processor


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return speechlike(0.6, RATE, seed=3)


def features(processor, clip):
    return processor(clip.numpy(), sampling_rate=RATE, return_tensors="pt")["input_features"]


def hf_generate(model, processor, clip, new_tokens=NEW_TOKENS):
    """The new token ids of the HF model's greedy ``generate`` on the extractor's features."""
    with torch.no_grad():
        return model.generate(features(processor, clip), max_new_tokens=new_tokens, do_sample=False)[0].tolist()


def row_plan(m, clip, target, method="gradient"):
    prepared = m.prepare(clip)
    return m.modality.plan_rows(prepared, m.modality.bind_target(target, prepared), method, {})


def test_loads_as_a_speech_to_text_task(whisper):
    m, _, _ = whisper
    assert spmm.tasks.task_for("WhisperForConditionalGeneration").name == "speech-to-text"
    assert m.modality.name == "speech-to-text"


def test_prepared_bins_equal_the_feature_extractor_output(whisper, clip):
    m, _, processor = whisper
    expected = features(processor, clip)[0].T
    prepared = m.prepare(clip)
    assert prepared.inputs.shape == (1, *expected.shape)
    assert (prepared.inputs[0] - expected).abs().max() <= 1e-5
    plan = row_plan(m, clip, spmm.Continuation(max_new_tokens=1))
    assert torch.equal(plan.prepared.inputs[0, : expected.numel()].view(expected.shape), prepared.inputs[0])


def test_transcript_is_the_models_greedy_generate(whisper, clip):
    m, model, processor = whisper
    ex = m.explain(clip, target=spmm.Continuation(max_new_tokens=NEW_TOKENS), method="gradient")
    new_ids = hf_generate(model, processor, clip)
    assert ex.transcript == processor.decode(new_ids, skip_special_tokens=True)
    assert ex.row_tokens == [processor.tokenizer.decode([i]) for i in new_ids]
    assert ex.spectrogram_maps.shape == (len(new_ids), 100, 16)
    assert ex.matrix.shape == (len(new_ids), len(ex.context_tokens)) and ex.prompt_columns == 1


def test_transcribe_is_generate_and_predict_points_to_it(whisper, clip):
    m, model, processor = whisper
    assert m.transcribe(clip, max_new_tokens=5) == processor.decode(hf_generate(model, processor, clip, 5),
                                                                    skip_special_tokens=True)
    with pytest.raises(SpmmInputError, match="transcribe"):
        m.predict(clip)


def test_forward_bit_identical_under_the_rules_and_equal_to_the_hf_model(whisper, clip):
    m, model, processor = whisper
    plan = row_plan(m, clip, spmm.Continuation("the cat"))
    explained, x = plan.prepared.model, plan.prepared.inputs
    ids = plan.prepared.context["generation"].input_ids
    plain, under_rules = forward_with_and_without_rules(explained, x, m.rules.for_model(explained))
    with torch.no_grad():
        hf = model(input_features=features(processor, clip), decoder_input_ids=ids).logits
    assert torch.equal(plain, under_rules)
    assert (plain - hf).abs().max() <= 1e-4 * hf.abs().max()


def test_gradient_maps_and_rows_equal_autograd_on_the_hf_model(whisper, clip):
    """Map t = (∂ logit_t / ∂ input_features)ᵀ; matrix row t = ⟨∂ logit_t / ∂ decoder_inputs_embeds,
    decoder_inputs_embeds⟩ on the decoder's tokens before token t (0 on the held special tokens)."""
    m, model, processor = whisper
    ex = m.explain(clip, target=spmm.Continuation(max_new_tokens=NEW_TOKENS), method="gradient")
    new_ids = hf_generate(model, processor, clip)
    start = model.generation_config.decoder_start_token_id
    ids = torch.tensor([[start, *new_ids]])
    table = model.get_decoder().get_input_embeddings()
    for t, token in enumerate(new_ids):
        input_features = features(processor, clip).requires_grad_(True)
        embeddings = table(ids).detach().requires_grad_(True)
        logits = model(input_features=input_features, decoder_inputs_embeds=embeddings).logits
        grad_features, grad_embeddings = torch.autograd.grad(logits[0, t, token], [input_features, embeddings])
        expected_map = grad_features[0].T
        assert (ex.spectrogram_maps[t] - expected_map).abs().max() <= 1e-3 * expected_map.abs().max()
        expected_row = (grad_embeddings * embeddings).sum(-1)[0]
        defined = ~torch.isnan(ex.matrix[t])
        assert defined.sum() == 1 + t
        special = torch.tensor([w is None for w in ex.context_words])
        free = defined & ~special
        assert free.sum() == t  # the transcript's tokens before token t (the start token is held)
        if t:
            scale = expected_row[free].abs().max()
            assert (ex.matrix[t][free] - expected_row[free]).abs().max() <= 1e-3 * scale
        assert (ex.matrix[t][defined & special] == 0).all()


def test_sequence_log_prob_is_the_sum_of_the_log_prob_rows(whisper, clip):
    m, _, _ = whisper
    whole = m.explain(clip, target=spmm.SequenceLogProb("the cat"), method="gradient")
    rows = m.explain(clip, target=spmm.Continuation("the cat", score="logprob"), method="gradient")
    assert whole.spectrogram_maps.shape[0] == 1
    expected = rows.spectrogram_maps.sum(0)
    assert (whole.spectrogram_maps[0] - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert torch.isclose(whole.row_scores.sum(), rows.row_scores.sum(), rtol=1e-5)


def test_words_merge_the_rows_maps(whisper, clip):
    """aggregate("words"): a word's map is the sum of its tokens' maps (the given text's words)."""
    m, _, processor = whisper
    ex = m.explain(clip, target=spmm.Continuation("the cat sat"), method="gradient")
    words = ex.aggregate("words")
    assert words.row_tokens == ["the", "cat", "sat"]
    ids = [processor.tokenizer(w, add_special_tokens=False)["input_ids"] for w in ["the", " cat", " sat"]]
    first = 0
    for r, word_ids in enumerate(ids):
        expected = ex.spectrogram_maps[first: first + len(word_ids)].sum(0)
        assert torch.allclose(words.spectrogram_maps[r], expected)
        first += len(word_ids)
    assert first == len(ex.row_tokens)


def test_soft_pullback_shared_and_batched_rows_agree_and_other_methods_run(whisper, clip):
    m, _, _ = whisper
    target = spmm.Continuation("the cat")
    shared = m.explain(clip, target=target, method="soft_pullback", strategy="shared")
    batched = m.explain(clip, target=target, method="soft_pullback", strategy="batched")
    scale = shared.spectrogram_maps.abs().max()
    assert (shared.spectrogram_maps - batched.spectrogram_maps).abs().max() <= 1e-4 * scale
    ex = m.explain(clip, target=target, method="integrated_gradients", steps=4)
    assert ex.spectrogram_maps.shape == shared.spectrogram_maps.shape and torch.isfinite(ex.spectrogram_maps).all()


def test_audit_clean_under_the_models_rules(whisper, clip):
    m, _, _ = whisper
    report = m.audit(clip, target=spmm.Continuation(max_new_tokens=2))
    ex = m.explain(clip, target=spmm.Continuation(max_new_tokens=2), method="soft_pullback")
    assert list(report.unhandled) == []
    assert not ex.to_dict()["exact_gradient_ops"]


def test_json_html_and_wav_outputs(whisper, clip, tmp_path):
    m, _, _ = whisper
    ex = m.explain(clip, target=spmm.Continuation(max_new_tokens=NEW_TOKENS))
    rows = len(ex.row_tokens)
    record = json.loads(ex.save(tmp_path / "x.json").read_text())
    item = record["items"][0]
    assert record["modality"] == "speech-to-text" and item["shape"] == list(ex.matrix.shape)
    assert np.array(item["extra"]["spectrogram_maps"]).shape == (rows, 100, 16)
    page = ex.save(tmp_path / "x.html").read_text()
    assert page.count("data:image/png;base64,") == rows and "spmm-matrix" in page
    wave, rate = soundfile.read(ex.save(tmp_path / "x.wav"))
    assert rate == RATE and len(wave) == rows * RATE + (rows - 1) * RATE // 4


def test_strip_pictures_put_low_frequencies_at_the_bottom_and_time_to_the_right(whisper, clip):
    """A map with one bin set (first frame, lowest band) colours the bottom-left pixel of its picture."""
    import base64
    import dataclasses
    import io
    import re

    from PIL import Image

    m, _, _ = whisper
    ex = m.explain(clip, target=spmm.Continuation("the"), method="gradient")
    maps = torch.zeros_like(ex.spectrogram_maps)
    maps[0, 0, 0] = 1.0
    page = dataclasses.replace(ex, bin_maps=maps).strip_html()
    picture = np.array(Image.open(io.BytesIO(base64.b64decode(re.findall(r"base64,([A-Za-z0-9+/=]+)", page)[0]))))
    assert picture.shape[:2] == (16, 100)
    red = (picture[..., 0].astype(int) - picture[..., 2].astype(int)) > 0
    assert red[-1, 0] and red.sum() == 1


def test_bad_input_is_a_one_line_error(whisper, clip):
    m, _, _ = whisper
    cases = [
        lambda: m.explain(torch.zeros(0)),
        lambda: m.explain(None),
        lambda: m.explain([clip, clip]),
        lambda: m.explain(clip, target=3),
        lambda: m.explain(clip, target=spmm.Continuation(max_new_tokens=100)),
        lambda: m.explain(clip, target=spmm.Continuation("the" + " cat" * 40)),
        lambda: m.explain(clip, prepare_options={"duration": 2.0}),
    ]
    for case in cases:
        with pytest.raises(SpmmInputError) as error:
            case()
        assert "\n" not in str(error.value)


def test_real_speech_clip_end_to_end(whisper, tmp_path):
    from tests.conftest import shared_data_dir

    folder = shared_data_dir() / "audio" / "speech_commands" / "yes"
    if not folder.is_dir():
        pytest.skip("the Speech Commands data is not in ../shared/data")
    m, model, processor = whisper
    path = sorted(folder.glob("*.wav"))[0]
    ex = m.explain(str(path), target=spmm.Continuation(max_new_tokens=2))
    wave, _ = soundfile.read(path, dtype="float32")
    assert ex.transcript == processor.decode(hf_generate(model, processor, torch.from_numpy(wave), 2),
                                             skip_special_tokens=True)
    assert torch.isfinite(ex.spectrogram_maps).all() and ex.save(tmp_path / "yes.html").is_file()


def test_cli_explains_a_clip_with_generate(whisper, clip, tmp_path, capsys):
    from spmm.cli import main

    m, _, _ = whisper
    path = tmp_path / "clip.wav"
    soundfile.write(path, clip.numpy(), RATE, subtype="FLOAT")
    assert main(["explain", m.lm.name_or_path, str(path), "--generate", "2", "--method", "gradient",
                 "--out", str(tmp_path / "out"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    (html_file,) = [f for f in record["files"] if f.endswith(".html")]
    (json_file,) = [f for f in record["files"] if f.endswith(".json")]
    (item,) = json.loads(open(json_file).read())["items"]
    direct = m.explain(str(path), target=spmm.Continuation(max_new_tokens=2), method="gradient")
    assert item["extra"]["row_tokens"] == direct.row_tokens and item["extra"]["transcript"] == direct.transcript
    assert np.allclose(np.array(item["extra"]["spectrogram_maps"]), direct.spectrogram_maps.numpy(), atol=1e-6)
    assert open(html_file).read().count("data:image/png;base64,") == len(direct.row_tokens)


def test_every_method_runs_or_refuses_in_one_line(whisper, clip):
    """Every method of spmm.list_methods() gives finite maps; the Grad-CAM ones refuse in one line."""
    m, _, _ = whisper
    for method in spmm.list_methods():
        if "cam" in method:
            with pytest.raises(SpmmInputError) as error:
                m.explain(clip, target=spmm.Continuation("the cat"), method=method, **few_draws(method))
            assert "\n" not in str(error.value)
            continue
        ex = m.explain(clip, target=spmm.Continuation("the cat"), method=method, **few_draws(method))
        assert ex.spectrogram_maps.shape[0] == len(ex.row_tokens) and torch.isfinite(ex.spectrogram_maps).all(), method
