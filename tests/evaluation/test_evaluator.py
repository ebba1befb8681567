"""evaluate(): the model and the baselines on the same records, one report."""

from __future__ import annotations

import json

import pytest
from evaluation_stubs import RECORDS, FixedCosines, StubModel

from pruning_encoder import PruningEncoder
from pruning_encoder.context_pruning import kept_spans
from pruning_encoder.data.records import Record
from pruning_encoder.evaluation import GRID, METRICS, evaluate, format_table, sentence_probabilities
from pruning_encoder.evaluation.metrics import PRUNING_METRICS, pruning_metrics
from pruning_encoder.sentence_splitter import split_sentences


def test_evaluate_with_a_stub_model() -> None:
    model = StubModel(RECORDS)
    report = evaluate(model, RECORDS, baselines=False)
    assert model.calls == [5]  # ranked and pruned from one process() pass
    row = report["methods"]["model"]
    assert row["mrr@10"] == 1.0 and row["ndcg@10"] == 1.0
    assert row["sentence_precision"] == 1.0 and row["sentence_recall"] == 1.0
    assert row["answer_kept"] == 1.0
    assert row["removed_irrelevant_pct"] == 100.0
    assert report["threshold"] == 0.5
    ranked = evaluate(StubModel(RECORDS, ranking=False), RECORDS, baselines=False, threshold=0.8)
    row = ranked["methods"]["model"]
    assert row["mrr@10"] is None and row["ndcg@10"] is None
    assert row["sentence_recall"] == 0.0
    assert ranked["threshold"] == 0.8


def test_evaluate_end_to_end(tiny_model: PruningEncoder) -> None:
    report = evaluate(tiny_model, RECORDS, threshold=0.4, batch_size=2)
    assert set(report) == {"methods", "counts", "threshold", "bi_encoder_threshold", "curves"}
    assert list(report["curves"]) == ["model"]  # no bi-encoder given
    assert report["threshold"] == 0.4
    assert report["counts"] == {
        "queries": 2,
        "texts": 5,
        "relevant_texts": 2,
        "sentences": 8,
        "relevant_sentences": 2,
    }
    for row in report["methods"].values():
        assert list(row) == list(METRICS)
    model_row = report["methods"]["model"]
    assert all(model_row[m] is not None for m in ("mrr@10", "ndcg@10", "removed_relevant_pct"))
    assert json.loads(json.dumps(report)) == report
    table = format_table(report)
    for name in report["methods"]:
        assert name in table
    assert "—" in table
    # The inner model works too.
    inner = evaluate(tiny_model.model, RECORDS, threshold=0.4, baselines=False)
    assert inner["methods"] == {"model": model_row}
    assert inner["curves"] == report["curves"]


def test_pruning_only_model(tiny_pruning_only: PruningEncoder) -> None:
    row = evaluate(tiny_pruning_only, RECORDS, baselines=False)["methods"]["model"]
    assert row["mrr@10"] is None and row["ndcg@10"] is None
    assert row["sentence_recall"] is not None


def test_the_model_and_the_bi_encoder_keep_spans_by_one_rule(tiny_model: PruningEncoder) -> None:
    """A bi-encoder whose cosines are the model's keep-probabilities keeps the same sentences at
    the same threshold; with one kept-span rule (context_pruning.kept_spans) its pruning row is
    then the model's, character for character. Kept sentences with a dropped one between them
    make the rules tell apart: the whitespace after a run but the last is kept."""
    text = " ".join(f"Sentence {word} is here." for word in "abcdefgh")
    records = [Record("Which sentence?", [text], [[(0, 21)]], labels=[1.0], answers=["a"])]
    (((spans,),), ((probabilities,),)) = sentence_probabilities(tiny_model, records)
    assert spans == split_sentences(text)
    gaps = [
        t
        for t in GRID.tolist()
        if "10" in "".join("1" if p > t else "0" for p in probabilities).strip("0")
    ]
    assert gaps, "no threshold keeps two sentences with a dropped one between them"
    threshold = gaps[0]
    cosines = {text[s:e]: float(p) for (s, e), p in zip(spans, probabilities, strict=True)}
    report = evaluate(
        tiny_model,
        records,
        threshold=threshold,
        bi_encoder=FixedCosines(cosines, {records[0].query}),
        bi_encoder_threshold=threshold,
    )
    model_row, bi_row = report["methods"]["model"], report["methods"]["bi-encoder"]
    assert {m: bi_row[m] for m in PRUNING_METRICS} == {m: model_row[m] for m in PRUNING_METRICS}
    expected = pruning_metrics(records, [[kept_spans(text, spans, probabilities > threshold)]])
    assert {m: model_row[m] for m in PRUNING_METRICS} == pytest.approx(expected)
