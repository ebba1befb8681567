"""The baselines: BM25, keep-all, keep-first-sentence and a real bi-encoder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from evaluation_stubs import CAPITAL, HAMLET, RECORDS, StubModel, record

from pruning_encoder import PruningEncoder
from pruning_encoder.evaluation import GRID, choose_bi_encoder_threshold, evaluate


def test_baselines(tiny_model: PruningEncoder, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pruning_encoder.evaluation.evaluator"):
        report = evaluate(tiny_model, RECORDS)
    assert "bi-encoder" in caplog.text
    methods = report["methods"]
    assert list(methods) == ["model", "bm25", "keep-all", "keep-first-sentence"]

    keep_all = methods["keep-all"]
    assert keep_all["sentence_recall"] == 1.0
    assert keep_all["removed_relevant_pct"] == 0.0
    assert keep_all["removed_irrelevant_pct"] == 0.0
    assert keep_all["answer_kept"] == 1.0
    assert keep_all["mrr@10"] is None
    # 2 relevant sentences among 8.
    assert keep_all["sentence_precision"] == pytest.approx(2 / 8)

    first = methods["keep-first-sentence"]  # both relevant sentences come second
    assert first["sentence_recall"] == 0.0
    assert first["sentence_precision"] == 0.0
    kept = len("Hamlet is a tragedy.") + len("The city of Paris is lovely.")
    total = len(HAMLET.texts[1]) + len(CAPITAL.texts[1])
    assert first["removed_relevant_pct"] == pytest.approx(100 * (1 - kept / total))
    assert first["answer_kept"] == 0.5  # "Paris" is in the first sentence

    bm25 = methods["bm25"]
    assert bm25["mrr@10"] == 1.0 and bm25["ndcg@10"] == 1.0
    assert bm25["sentence_f1"] is None


def test_bm25_puts_the_lexical_match_first() -> None:
    rec = record(
        "capital of France",
        ["Cats purr.", "Dogs bark at night.", "Paris is the capital of France."],
        [[], [], ["Paris is the capital of France."]],
    )
    constant = record("zzz", ["Cats purr.", "Dogs bark."], [["Cats purr."], []])
    stopwords = record("the of and", ["Cats purr.", "Dogs bark."], [[], ["Dogs bark."]])
    report = evaluate(StubModel([rec]), [rec, constant, stopwords], bi_encoder=None)
    # The lexical match ranks first; a query matching nothing (or only stopwords) scores every
    # text 0 and its relevant text goes last (worst case ties).
    assert report["methods"]["bm25"]["mrr@10"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)


def test_bi_encoder(tiny_model: PruningEncoder, minilm_path: Path) -> None:
    report = evaluate(tiny_model, RECORDS, bi_encoder=minilm_path, bi_encoder_threshold=0.3)
    row = report["methods"]["bi-encoder"]
    assert list(report["methods"]) == [
        "model",
        "bm25",
        "bi-encoder",
        "keep-all",
        "keep-first-sentence",
    ]
    assert row["mrr@10"] == 1.0
    assert row["sentence_recall"] is not None and 0.0 <= row["sentence_recall"] <= 1.0
    assert report["bi_encoder_threshold"] == 0.3
    threshold = choose_bi_encoder_threshold(RECORDS, str(minilm_path))  # a path as text
    assert threshold in GRID.tolist()
    json.dumps(report)
