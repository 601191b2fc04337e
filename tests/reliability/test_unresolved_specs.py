"""A first argument shaped like a model spec that does not resolve is refused in one line (rc 2,
naming the accepted specs) instead of being explained as a sentence; a folder is never a text
input; genuine sentences still go to the embedded text model."""

from __future__ import annotations

import pytest

from spmm.cli import main


def _refused(capsys, argv: list[str], *messages: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for message in messages:
        assert message in err, err


@pytest.mark.parametrize("spec", ["./no_such_dir", "no_such_dir/sub/deeper", "/no/such/folder", "~/no_such_model"])
def test_a_path_that_does_not_exist_is_refused(tmp_path, capsys, spec):
    _refused(capsys, ["explain", spec, "a fine film", "--out", str(tmp_path / "o")],
             f"{spec!r} looks like a model spec", "no such folder", "Accepted specs", "--model")
    assert not (tmp_path / "o").exists()


def test_a_model_id_that_is_not_cached_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    _refused(capsys, ["explain", "some-org/some-model", "hi", "--out", str(tmp_path / "o")],
             "'some-org/some-model' looks like a model spec", "Hugging Face cache", "Accepted specs")


@pytest.mark.parametrize("command", ["explain", "compare"])
def test_a_folder_without_a_model_is_refused(tmp_path, capsys, command):
    (tmp_path / "notes.txt").write_text("not a model")
    _refused(capsys, [command, str(tmp_path), "--out", str(tmp_path / "o")],
             "looks like a model spec", "folder without a model", "save_pretrained")


def test_a_folder_among_the_inputs_is_refused(tmp_path, capsys):
    _refused(capsys, ["explain", "--model", "minilm-sst2", "a fine film", str(tmp_path), "--out", str(tmp_path / "o")],
             f"input {tmp_path} is a folder")


@pytest.mark.parametrize("sentence", ["a fine film", "good/bad acting, a fine film", "./ that was fine"])
def test_genuine_sentences_are_explained_with_the_text_default(tmp_path, capsys, sentence):
    out = tmp_path / "o"
    assert main(["explain", sentence, "--out", str(out)]) == 0
    assert "minilm-sst2" in capsys.readouterr().out
    assert [p.suffix for p in sorted(out.iterdir())] == [".html", ".json"]
