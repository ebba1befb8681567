"""The FanOutQA validation benchmark: the model against its baselines on the validation cases,
the bi-encoder compared at the model's answer-kept rate."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import fanoutqa_dev, fanoutqa_summaries
from evaluation_stubs import BagOfWords, ScoredModel

from pruning_encoder import PruningEncoder
from pruning_encoder.data.fanoutqa import build_validation
from pruning_encoder.data.records import Record
from pruning_encoder.evaluation import (
    GRID,
    evaluate,
    evaluate_fanoutqa,
    format_curves,
    format_table,
    plot_curves,
)
from pruning_encoder.evaluation.benchmark import FANOUTQA_METRICS
from pruning_encoder.evaluation.curves import TRADEOFF_COLUMNS


def next_grid(threshold: float) -> float:
    """The grid threshold just above ``threshold``."""
    return float(GRID[GRID.tolist().index(threshold) + 1])


@pytest.fixture(scope="module")
def cases() -> dict[str, list[Record]]:
    return build_validation(fanoutqa_summaries(), fanoutqa_dev())


def answer_sentences_score(question: str, sentence: str) -> float:
    """0.9 for the sentences of the question's evidence summary (``Evidence k`` for a question
    about ``Quorn<k>``), 0.1 otherwise."""
    k = question.rstrip("?")[-1]
    evidence = sentence.startswith((f"Quorn{k} is in", f"The lead{k} of", f"It is {int(k) + 1}77"))
    return 0.9 if evidence else 0.1


# --------------------------------------------------------------------------- the benchmark


def test_benchmark_compares_the_bi_encoder_at_the_models_answer_kept_rate(
    cases: dict[str, list[Record]],
) -> None:
    model = ScoredModel(answer_sentences_score)
    encoder = BagOfWords()
    report = evaluate_fanoutqa(model, cases["ranking"], cases["pruning"], bi_encoder=encoder)
    methods = report["methods"]
    assert list(methods) == ["model", "bm25", "bi-encoder", "keep-all", "keep-first-sentence"]
    assert all(list(row) == list(FANOUTQA_METRICS) for row in methods.values())
    assert model.calls == [30, 2]  # one ranking pass, one pruning pass

    assert methods["model"]["mrr@10"] == 1.0
    assert methods["model"]["answer_kept"] == 1.0
    assert methods["model"]["removed_distractor_pct"] == 100.0
    assert methods["model"]["removed_evidence_pct"] == 0.0
    assert methods["model"]["sentence_f2"] == 1.0
    keep_all = methods["keep-all"]
    assert keep_all["mrr@10"] is None and keep_all["ndcg@10"] is None
    assert keep_all["removed_distractor_pct"] == keep_all["removed_evidence_pct"] == 0.0
    # 3 relevant sentences per case, among 9 (two other evidence summaries are the first case's
    # distractors) and 7 (two Near summaries): tp 6, fp 10, fn 0.
    assert keep_all["sentence_f2"] == pytest.approx(5 * 6 / (5 * 6 + 10))
    assert methods["keep-all"]["answer_kept"] == 1.0
    assert methods["bm25"]["mrr@10"] == 1.0 and methods["bm25"]["answer_kept"] is None
    assert methods["keep-first-sentence"]["mrr@10"] is None

    # The highest grid threshold at which the bi-encoder keeps every answer too.
    chosen = report["bi_encoder_threshold"]
    assert chosen in GRID.tolist() and 0.01 < chosen < 0.99
    assert methods["bi-encoder"]["answer_kept"] == 1.0
    above = evaluate(
        model, cases["pruning"], bi_encoder=encoder, bi_encoder_threshold=next_grid(chosen)
    )
    assert above["methods"]["bi-encoder"]["answer_kept"] < 1.0
    at = evaluate(model, cases["pruning"], bi_encoder=encoder, bi_encoder_threshold=chosen)
    assert at["methods"]["bi-encoder"]["removed_distractor_pct"] == pytest.approx(
        methods["bi-encoder"]["removed_distractor_pct"]
    )
    # The ranking texts are encoded, never their sentences (a summary's first sentence is not
    # a whole summary, so it would only be encoded for pruning).
    assert "Fen0x0 keeps vexa0." not in encoder.encoded

    assert report["counts"] == {"ranking_cases": 3, "pruning_cases": 2}
    assert report["threshold"] == 0.5
    assert json.loads(json.dumps(report)) == report
    table = format_table(report)
    header = table.splitlines()[0]
    for label in ("MRR@10", "nDCG@10", "answer kept", "rm distr %", "rm evid %", "sent F2"):
        assert label in header
    assert "sent P" not in header and "rm rel %" not in header
    assert all(name in table for name in methods)


def test_benchmark_tiny_model_without_bi_encoder(
    tiny_model: PruningEncoder, cases: dict[str, list[Record]], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pruning_encoder.evaluation.evaluator"):
        report = evaluate_fanoutqa(tiny_model, cases["ranking"], cases["pruning"], threshold=0.3)
    assert "bi-encoder" in caplog.text
    assert list(report["methods"]) == ["model", "bm25", "keep-all", "keep-first-sentence"]
    assert report["threshold"] == 0.3 and report["bi_encoder_threshold"] is None
    row = report["methods"]["model"]
    assert all(row[name] is not None for name in FANOUTQA_METRICS)
    expected = evaluate(tiny_model, cases["pruning"], threshold=0.3, baselines=False)
    assert row["answer_kept"] == expected["methods"]["model"]["answer_kept"]
    ranked = evaluate(tiny_model, cases["ranking"], baselines=False)["methods"]["model"]
    assert row["mrr@10"] == ranked["mrr@10"]


def test_benchmark_pruning_only_model_skips_the_ranking_pass(
    cases: dict[str, list[Record]],
) -> None:
    model = ScoredModel(answer_sentences_score, ranking=False)
    report = evaluate_fanoutqa(model, cases["ranking"], cases["pruning"], baselines=False)
    assert model.calls == [2]
    assert list(report["methods"]) == ["model"]
    row = report["methods"]["model"]
    assert row["mrr@10"] is None and row["answer_kept"] == 1.0


def test_benchmark_bi_encoder_below_the_model_everywhere_falls_back_to_the_lowest(
    cases: dict[str, list[Record]], caplog: pytest.LogCaptureFixture
) -> None:
    class Orthogonal(BagOfWords):
        """Questions and sentences never share a direction: every cosine is 0."""

        def encode(self, strings: list[str], **options: Any) -> np.ndarray:
            vectors = np.zeros((len(strings), len(strings)))
            np.fill_diagonal(vectors, 1.0)
            return vectors

    model = ScoredModel(answer_sentences_score)
    with caplog.at_level(logging.WARNING, logger="pruning_encoder.evaluation.evaluator"):
        report = evaluate_fanoutqa(
            model, cases["ranking"], cases["pruning"], bi_encoder=Orthogonal()
        )
    assert report["bi_encoder_threshold"] == 0.01
    assert report["methods"]["bi-encoder"]["answer_kept"] == 0.0
    assert "fewer cases than the model" in caplog.text


def test_the_trade_off_curves_hold_each_methods_row_at_its_threshold(
    cases: dict[str, list[Record]], tmp_path: Path
) -> None:
    model = ScoredModel(answer_sentences_score)
    report = evaluate_fanoutqa(model, cases["ranking"], cases["pruning"], bi_encoder=BagOfWords())
    assert model.calls == [30, 2]  # the curve comes from the pruning pass
    assert list(report["curves"]) == ["model", "bi-encoder"]
    for method, key in (("model", "threshold"), ("bi-encoder", "bi_encoder_threshold")):
        curve = report["curves"][method]
        assert [row["threshold"] for row in curve] == GRID.tolist()
        assert all(list(row) == list(TRADEOFF_COLUMNS) for row in curve)
        (at,) = [row for row in curve if row["threshold"] == report[key]]
        for name in TRADEOFF_COLUMNS[1:]:
            assert at[name] == pytest.approx(report["methods"][method][name])
    lines = format_curves(report).splitlines()
    assert lines[0].split() == ["model", "bi-encoder"]
    assert lines[1].split()[:4] == ["threshold", "answer", "kept", "rm"]
    marks = {line.split()[0]: line.split("<- ")[1] for line in lines if "<- " in line}
    assert "model" in marks["0.50"]
    assert "bi-encoder" in marks[f"{report['bi_encoder_threshold']:.2f}"]
    assert [line.split()[0] for line in lines[3:]][:4] == ["0.01", "0.02", "0.03", "0.05"]
    plot_curves(report, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "curves.png"]  # no temporary file left
