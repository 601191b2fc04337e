"""``spmm explain`` on audio files: CREPE on a tone, honk on real clips, clear errors."""

from __future__ import annotations

import json

import soundfile

from spmm.cli import main

from tests.audio.audio_signals import tone


def test_crepe_on_a_tone_writes_png_wav_and_json(tmp_path, capsys):
    soundfile.write(tmp_path / "a440.wav", tone(440, 0.3, 22050).numpy(), 22050)
    code = main(["explain", "crepe-tiny", str(tmp_path / "a440.wav"), "--duration", "0.2",
                 "--out", str(tmp_path / "out"), "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out.strip())
    (item,) = record["items"]
    assert record["modality"] == "audio" and record["rules"]["name"] == "audio"
    assert abs(float(item["predictions"][0]["label"].removesuffix("Hz")) - 440) < 15
    assert item["shape"] == [26, 257]
    assert [f.rsplit(".", 1)[-1] for f in record["files"]] == ["png", "wav", "json"]
    data, rate = soundfile.read(record["files"][1])
    assert rate == 16000 and len(data) == 3200


def test_honk_on_a_real_clip_through_the_alias(shared_data, tmp_path, capsys):
    clip = next((shared_data / "audio" / "speech_commands" / "yes").glob("*.wav"))
    weights = shared_data / "audio" / "models" / "honk_res8.pt"
    code = main(["explain-audio", "honk-res8", str(clip), "--weights", str(weights),
                 "--target", "yes", "--method", "gradient", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "predicted yes" in out and "explained 'yes'" in out and "honk-res8" in out
    assert len(list(tmp_path.glob("*.png"))) == 1 and len(list(tmp_path.glob("*.wav"))) == 1


def test_errors_are_one_line_reports(tmp_path, capsys):
    soundfile.write(tmp_path / "x.wav", tone(440, 0.1).numpy(), 16000)
    assert main(["explain", "honk-res8", str(tmp_path / "x.wav"), "--out", str(tmp_path)]) == 2
    assert "never downloads" in capsys.readouterr().err
    assert main(["explain", "crepe-tiny", str(tmp_path / "missing.wav"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["explain", "crepe-tiny", str(tmp_path / "x.wav"), "--offset", "5", "--out", str(tmp_path)]) == 2
    assert "offset" in capsys.readouterr().err
