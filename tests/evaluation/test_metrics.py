"""Evaluation: the metric functions on hand-made cases, the baselines and ``evaluate()``."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pruning_encoder import PruningEncoder
from pruning_encoder.data.records import Record
from pruning_encoder.evaluation.metrics import (
    GRID,
    METRICS,
    choose_bi_encoder_threshold,
    choose_threshold,
    evaluate,
    format_table,
    mrr_at_k,
    ndcg_at_k,
    pruning_metrics,
    ranking_metrics,
)
from pruning_encoder.sentence_splitter import split_sentences


def record(
    query: str,
    texts: list[str],
    relevant: list[list[str]],
    answers: list[str] | None = None,
) -> Record:
    """A record whose relevant spans are the given sentences (found by substring)."""
    spans = [
        [(text.index(s), text.index(s) + len(s)) for s in sentences]
        for text, sentences in zip(texts, relevant, strict=True)
    ]
    labels = [1.0 if s else 0.0 for s in spans]
    return Record(query, texts, spans, labels=labels, answers=answers or [])


HAMLET = record(
    "Who wrote Hamlet?",
    [
        "Paris is in France.",
        "Hamlet is a tragedy. It was written by Shakespeare.",
        "Cats purr when they are happy.",
    ],
    [[], ["It was written by Shakespeare."], []],
    answers=["shakespeare"],
)
CAPITAL = record(
    "What is the capital of France?",
    [
        "Dogs bark loudly. Birds sing.",
        "The city of Paris is lovely. Paris is the capital of France.",
    ],
    [[], ["Paris is the capital of France."]],
    answers=["Paris"],
)
RECORDS = [HAMLET, CAPITAL]


# --------------------------------------------------------------------------- ranking


def test_mrr_and_ndcg_one_relevant() -> None:
    assert mrr_at_k([0.9, 0.5, 0.1], [0, 1, 0]) == 0.5
    assert ndcg_at_k([0.9, 0.5, 0.1], [0, 1, 0]) == pytest.approx(1 / math.log2(3))
    assert mrr_at_k([0.1, 0.9], [0, 1]) == 1.0
    assert ndcg_at_k([0.1, 0.9], [0, 1]) == 1.0


def test_mrr_and_ndcg_two_relevant() -> None:
    assert mrr_at_k([0.9, 0.5, 0.1], [1, 0, 1]) == 1.0
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k([0.9, 0.5, 0.1], [1, 0, 1]) == pytest.approx(expected)


def test_ties_are_broken_worst_case() -> None:
    assert mrr_at_k([0.0, 0.0, 0.0], [1, 0, 0]) == pytest.approx(1 / 3)
    assert ndcg_at_k([0.0, 0.0, 0.0], [1, 0, 0]) == pytest.approx(1 / math.log2(4))
    # Only the tied texts are reordered.
    assert mrr_at_k([0.5, 0.5, 0.9], [1, 0, 0]) == pytest.approx(1 / 3)
    assert mrr_at_k([0.5, 0.5, 0.1], [0, 1, 0]) == 0.5


def test_cut_off_at_ten_and_no_relevant() -> None:
    scores = [float(-i) for i in range(11)]
    assert mrr_at_k(scores, [0] * 10 + [1]) == 0.0
    assert ndcg_at_k(scores, [0] * 10 + [1]) == 0.0
    assert mrr_at_k([0.3, 0.2], [0, 0]) is None
    assert ndcg_at_k([0.3, 0.2], [0, 0]) is None


def test_queries_without_relevant_texts_are_skipped() -> None:
    nothing = Record("q", ["a.", "b."], [[], []], labels=[0.0, 0.0])
    one = Record("q", ["a.", "b."], [[], [(0, 2)]], labels=[0.0, 1.0])
    assert ranking_metrics([nothing, one], [[1.0, 0.0], [1.0, 0.0]]) == {
        "mrr@10": 0.5,
        "ndcg@10": pytest.approx(1 / math.log2(3)),
    }
    assert ranking_metrics([nothing], [[1.0, 0.0]]) == {"mrr@10": None, "ndcg@10": None}


# --------------------------------------------------------------------------- pruning


TEXT = "One is here. Two is here. Three is here. Four is here."


def sentences_of(text: str) -> list[tuple[int, int]]:
    return split_sentences(text)


def test_precision_recall_f1_f2() -> None:
    units = sentences_of(TEXT)
    assert len(units) == 4
    rec = Record("q", [TEXT], [units[1:]], labels=[1.0])  # sentences 2-4 relevant
    metrics = pruning_metrics([rec], [[[units[3]]]])  # only sentence 4 kept
    assert metrics["sentence_precision"] == 1.0
    assert metrics["sentence_recall"] == pytest.approx(1 / 3)
    assert metrics["sentence_f1"] == pytest.approx(0.5)
    assert metrics["sentence_f2"] == pytest.approx(5 / 13)
    metrics = pruning_metrics([rec], [[[units[0], units[1]]]])  # tp 1, fp 1, fn 2
    assert metrics["sentence_precision"] == 0.5
    assert metrics["sentence_recall"] == pytest.approx(1 / 3)
    assert metrics["sentence_f1"] == pytest.approx(2 / 5)
    nothing = pruning_metrics([rec], [[[]]])
    assert nothing["sentence_precision"] is None
    assert nothing["sentence_recall"] == 0.0
    assert nothing["sentence_f1"] == 0.0


def test_micro_pooling_over_texts() -> None:
    a = Record("q", ["A one. A two."], [[(0, 6)]], labels=[1.0])
    b = Record("q", ["B one. B two."], [[]], labels=[0.0])
    metrics = pruning_metrics([a, b], [[[(0, 13)]], [[(0, 13)]]])
    assert metrics["sentence_precision"] == 0.25
    assert metrics["sentence_recall"] == 1.0


def test_half_characters_rule() -> None:
    text = "Aaaa bbbb. Cccc dddd."  # two sentences of 10 and 10 characters
    assert sentences_of(text) == [(0, 10), (11, 21)]
    # Relevant: exactly half of the first sentence counts, one character less does not.
    half = Record("q", [text], [[(5, 10)]], labels=[1.0])
    less = Record("q", [text], [[(6, 10)]], labels=[1.0])
    kept_all = [[[(0, 21)]]]
    assert pruning_metrics([half], kept_all)["sentence_precision"] == 0.5
    assert pruning_metrics([less], kept_all)["sentence_precision"] == 0.0
    # Kept: the same rule on the kept spans.
    first = Record("q", [text], [[(0, 10)]], labels=[1.0])
    assert pruning_metrics([first], [[[(0, 5)]]])["sentence_recall"] == 1.0
    assert pruning_metrics([first], [[[(0, 4)]]])["sentence_recall"] == 0.0
    # Kept spans may overlap or be split; they are merged first.
    assert pruning_metrics([first], [[[(0, 3), (2, 5)]]])["sentence_recall"] == 1.0


def test_answer_kept_needs_every_answer() -> None:
    texts = ["Hamlet was by Shakespeare in 1600. It rains.", "It rains. Shakespeare wrote it."]
    rec = Record(
        "q",
        [*texts, "Shakespeare is not relevant here."],
        [[(0, 34)], [(10, 31)], []],
        labels=[1.0, 1.0, 0.0],
        answers=["SHAKESPEARE", "1600"],
    )
    # The first keeps both answers, the second loses both; irrelevant texts do not count.
    assert pruning_metrics([rec], [[[(0, 34)], [(0, 9)], [(0, 33)]]])["answer_kept"] == 0.5
    # Shakespeare kept without 1600 is a miss; a relevant text holding only one answer is too.
    assert pruning_metrics([rec], [[[(0, 25)], [(0, 31)], []]])["answer_kept"] == 0.0
    no_answers = Record("q", texts, [[(0, 34)], [(10, 31)]], labels=[1.0, 1.0])
    assert pruning_metrics([no_answers], [[[(0, 34)], [(0, 9)]]])["answer_kept"] is None


def test_removed_evidence_and_distractor_percentages() -> None:
    # Evidence: "Bbbb bbbb." (10 chars) of the first text; the other 11 + 6 characters are
    # distractors, including the irrelevant text and the relevant text's other sentence.
    rec = Record("q", ["Aaaa aaaa. Bbbb bbbb.", "Cccc."], [[(11, 21)], []], labels=[1.0, 0.0])
    metrics = pruning_metrics([rec], [[[(0, 21)], []]])
    assert metrics["removed_evidence_pct"] == 0.0
    assert metrics["removed_distractor_pct"] == pytest.approx(100 * (1 - 11 / 16))
    metrics = pruning_metrics([rec], [[[(5, 16)], [(0, 5)]]])  # half of each sentence, all of C
    assert metrics["removed_evidence_pct"] == pytest.approx(100 * (1 - 5 / 10))
    assert metrics["removed_distractor_pct"] == pytest.approx(100 * (1 - (6 + 5) / 16))
    # Pooled over records; none when there are no characters of that kind.
    assert pruning_metrics([rec, rec], [[[(11, 21)], []], [[], []]])["removed_evidence_pct"] == 50
    everything = Record("q", ["Aa."], [[(0, 3)]], labels=[1.0])
    metrics = pruning_metrics([everything], [[[(0, 3)]]])
    assert metrics["removed_distractor_pct"] is None and metrics["removed_evidence_pct"] == 0.0
    nothing = Record("q", ["Aa."], [[]], labels=[0.0])
    assert pruning_metrics([nothing], [[[]]])["removed_evidence_pct"] is None


def test_removed_percentages() -> None:
    rec = Record("q", ["Aaaa bbbb. Cccc dddd.", "Eeee."], [[(0, 10)], []], labels=[1.0, 0.0])
    metrics = pruning_metrics([rec], [[[(0, 10)], []]])
    assert metrics["removed_relevant_pct"] == pytest.approx(100 * (1 - 10 / 21))
    assert metrics["removed_irrelevant_pct"] == 100.0
    only_relevant = pruning_metrics([Record("q", ["Aa."], [[(0, 3)]], labels=[1.0])], [[[]]])
    assert only_relevant["removed_irrelevant_pct"] is None


# --------------------------------------------------------------------------- a stub model


class StubModel:
    """``process()`` over aligned lists with fixed sentence probabilities: 0.7 relevant, 0.3 not.

    Its reranking score is 1 for texts with a relevant sentence, 0 otherwise.
    """

    def __init__(self, records: list[Record], *, ranking: bool = True) -> None:
        self.config = SimpleNamespace(default_threshold=0.5, has_ranking_head=ranking)
        self.relevant = {
            (rec.query, text, span)
            for rec in records
            for text, spans in zip(rec.texts, rec.relevant_spans, strict=True)
            for span in spans
        }
        self.calls = 0

    def process(self, question: Any, context: Any, **options: Any) -> list[dict[str, Any]]:
        assert isinstance(question, list) and isinstance(context, list)
        self.calls += 1
        threshold = options["threshold"]
        threshold = self.config.default_threshold if threshold is None else threshold
        results = []
        for q, text in zip(question, context, strict=True):
            spans = split_sentences(text)
            probs = [0.7 if (q, text, span) in self.relevant else 0.3 for span in spans]
            kept = [span for span, p in zip(spans, probs, strict=True) if p > threshold]
            result = {
                "pruned_context": "".join(text[s:e] for s, e in kept),
                "reranking_score": float(max(probs)) if self.config.has_ranking_head else None,
                "compression_rate": 0.0,
                "kept_spans": kept,
            }
            if options.get("return_sentence_probabilities"):
                result["sentence_spans"] = spans
                result["sentence_probabilities"] = probs
            results.append(result)
        return results


def test_choose_threshold_finds_the_best_grid_value() -> None:
    model = StubModel(RECORDS)
    # Any threshold in [0.30, 0.70) separates 0.7 from 0.3 perfectly; ties go to the lowest.
    assert choose_threshold(model, RECORDS) == 0.3
    assert model.calls == 1


def test_evaluate_with_a_stub_model() -> None:
    report = evaluate(StubModel(RECORDS), RECORDS, baselines=False)
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


# --------------------------------------------------------------------------- baselines


def test_baselines(tiny_model: PruningEncoder, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pruning_encoder.evaluation.metrics"):
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


# --------------------------------------------------------------------------- end to end


def test_choose_threshold_tiny_model(tiny_model: PruningEncoder) -> None:
    first = choose_threshold(tiny_model, RECORDS, batch_size=2)
    assert first in GRID.tolist()
    assert 0.01 <= first <= 0.99
    assert choose_threshold(tiny_model.model, RECORDS) == first


def test_evaluate_end_to_end(tiny_model: PruningEncoder) -> None:
    report = evaluate(tiny_model, RECORDS, threshold=0.4, batch_size=2)
    assert set(report) == {"methods", "counts", "threshold", "bi_encoder_threshold"}
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
    assert evaluate(tiny_model.model, RECORDS, threshold=0.4, baselines=False)["methods"] == {
        "model": model_row
    }


def test_pruning_only_model(tiny_pruning_only: PruningEncoder) -> None:
    row = evaluate(tiny_pruning_only, RECORDS, baselines=False)["methods"]["model"]
    assert row["mrr@10"] is None and row["ndcg@10"] is None
    assert row["sentence_recall"] is not None


def test_format_table() -> None:
    report = {
        "methods": {
            "model": dict.fromkeys(METRICS, 0.5) | {"removed_relevant_pct": 12.345},
            "keep-all": dict.fromkeys(METRICS) | {"sentence_recall": 1.0},
        }
    }
    lines = format_table(report).splitlines()
    assert lines[0].split()[:3] == ["method", "MRR@10", "nDCG@10"]
    assert len(lines) == 4
    assert len({len(line.rstrip()) for line in lines[:2]}) == 1
    assert "12.3" in lines[2] and "0.500" in lines[2] and "12.345" not in lines[2]
    assert lines[3].startswith("keep-all") and "—" in lines[3] and "1.000" in lines[3]


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
