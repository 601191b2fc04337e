"""What the page's speech-to-text tab shows (no browser), for a tiny CTC and a tiny Whisper folder:
the explanation ``m.explain`` gives, its own HTML, each token's map enlarged from the same renderer
(the strip's picture), each token's WAV (its stretch of the explanation's WAV), downloads, one-line
errors."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import soundfile
import torch

import spmm
from spmm.cli.page import results
from spmm.modalities.audio.explanation import WAV_GAP_SECONDS
from spmm.modalities.audio.transcription import STRIP_SIZE
from tests.audio.audio_signals import speechlike
from tests.audio.speech_models import RATE, save_tiny_ctc, save_tiny_whisper

pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOKENS = 3
IMAGE_SOURCE = re.compile(r'src="(data:image/png;base64,[^"]+)"')


@pytest.fixture(scope="module", params=["ctc", "whisper"])
def speech(request, tmp_path_factory):
    """(spec name, the loaded tiny model)."""
    save = {"ctc": save_tiny_ctc, "whisper": save_tiny_whisper}[request.param]
    return f"tiny-{request.param}", spmm.load(str(save(tmp_path_factory.mktemp(request.param))))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "speech.wav"
    soundfile.write(str(path), speechlike(0.5, RATE, seed=3).numpy(), RATE)
    return path


def test_page_shows_the_explanation_of_m_explain(speech, clip, tmp_path):
    spec, model = speech
    result = results.explain_speech_to_text(model, clip, TOKENS, "gradient", tmp_path, spec=spec)
    direct = model.explain(str(clip), target=spmm.Continuation(max_new_tokens=TOKENS), method="gradient")
    assert result.transcript == direct.transcript
    assert list(result.tokens) == [f"{r + 1}. {token}" for r, token in enumerate(direct.row_tokens)]
    assert len(result.tokens) == TOKENS
    assert result.html == direct.html()
    strip_pictures = IMAGE_SOURCE.findall(direct.strip_html())
    assert len(strip_pictures) == TOKENS
    width = results.ENLARGED_SPECTROGRAM_WIDTH
    height = round(width * STRIP_SIZE[1] / STRIP_SIZE[0])  # the strip's aspect ratio
    for r, figure in enumerate(result.tokens.values()):
        assert figure == direct.token_html(r, width)
        assert f'width="{width}" height="{height}"' in figure
        assert IMAGE_SOURCE.findall(figure) == [strip_pictures[r]]  # the strip's own picture, shown larger
        assert direct.token_html(r).split("</style>", 1)[1] in direct.strip_html()  # default: the strip's figure
    assert sorted(path.suffix for path in result.files) == [".html", ".json", ".wav"]
    assert {path.stem for path in result.files} == {f"speech-{spec}-gradient-generate{TOKENS}"}
    (item,) = json.loads(next(p for p in result.files if p.suffix == ".json").read_text())["items"]
    assert torch.allclose(torch.tensor(item["extra"]["spectrogram_maps"], dtype=torch.float32), direct.bin_maps,
                          atol=1e-6)


def test_each_token_plays_its_stretch_of_the_explanations_wav(speech, clip, tmp_path):
    spec, model = speech
    result = results.explain_speech_to_text(model, clip, TOKENS, "gradient", tmp_path, spec=spec)
    everything, rate = soundfile.read(str(next(p for p in result.files if p.suffix == ".wav")))
    explained = model.explain(str(clip), target=spmm.Continuation(max_new_tokens=TOKENS), method="gradient").waveform
    samples, gap = len(explained), round(WAV_GAP_SECONDS * rate)  # the excerpt the model sees (Whisper pads it)
    assert samples >= soundfile.info(str(clip)).frames
    assert len(everything) == TOKENS * samples + (TOKENS - 1) * gap
    assert list(result.wavs) == list(result.tokens)
    for r, path in enumerate(result.wavs.values()):
        played, played_rate = soundfile.read(str(path))
        assert played_rate == rate == RATE
        np.testing.assert_array_equal(played, everything[r * (samples + gap): r * (samples + gap) + samples])
        assert path.parent.name == "tokens" and path not in result.files


@pytest.mark.parametrize("make, tokens, expected", [
    (lambda path: soundfile.write(str(path), np.zeros(0, np.float32), RATE), TOKENS, "holds no samples"),
    (lambda path: path.write_text("not audio"), TOKENS, "cannot read"),
    (lambda path: soundfile.write(str(path), np.zeros(11 * RATE, np.float32), RATE), TOKENS, "at most 10 s"),
    (None, 0, "between 1 and"),
    (None, results.MAX_NEW_TOKENS + 1, "between 1 and"),
])
def test_bad_requests_are_one_line_errors(speech, clip, tmp_path, make, tokens, expected):
    _, model = speech
    path = clip
    if make is not None:
        path = tmp_path / "bad.wav"
        make(path)
    with pytest.raises(spmm.SpmmInputError, match=expected) as error:
        results.explain_speech_to_text(model, path, tokens, "gradient", tmp_path)
    assert "\n" not in str(error.value)
