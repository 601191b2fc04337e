"""``spmm explain-audio`` end to end."""

from __future__ import annotations

import json

import soundfile

from spmm.cli import main

from tests.audio.audio_signals import tone


def test_explain_audio_crepe_writes_png_and_wav(tmp_path, capsys):
    soundfile.write(tmp_path / "a440.wav", tone(440, 0.3, 22050).numpy(), 22050)
    code = main(["explain-audio", str(tmp_path / "a440.wav"), "--model", "crepe-tiny", "--duration", "0.2",
                 "--out", str(tmp_path / "out"), "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert abs(float(record["top"][0]["label"].removesuffix("Hz")) - 440) < 15
    assert record["attribution_shape"] == [26, 257]
    assert [f.rsplit(".", 1)[-1] for f in record["files"]] == ["png", "wav"]
    data, rate = soundfile.read(record["files"][1])
    assert rate == 16000 and len(data) == 3200


def test_explain_audio_honk_on_real_clips(shared_data, tmp_path, capsys):
    clip = next((shared_data / "audio" / "speech_commands" / "yes").glob("*.wav"))
    code = main(["explain-audio", str(clip), "--model", "honk-res8", "--weights",
                 str(shared_data / "audio" / "models" / "honk_res8.pt"), "--target", "yes",
                 "--method", "gradient", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{clip}: yes") and "explained 'yes' with gradient" in out
    assert len(list(tmp_path.glob("*.png"))) == 1 and len(list(tmp_path.glob("*.wav"))) == 1


def test_explain_audio_errors_are_reported(tmp_path, capsys):
    soundfile.write(tmp_path / "x.wav", tone(440, 0.1).numpy(), 16000)
    assert main(["explain-audio", str(tmp_path / "x.wav"), "--model", "honk-res8"]) == 2
    assert "never downloads" in capsys.readouterr().err
    assert main(["explain-audio", str(tmp_path / "missing.wav"), "--model", "crepe-tiny"]) == 2
    assert "not found" in capsys.readouterr().err
