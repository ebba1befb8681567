"""The FanOutQA validation cases and benchmark, on synthetic summaries and dev questions."""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import fanoutqa_dev, fanoutqa_summaries

from pruning_encoder import PruningEncoder
from pruning_encoder.context_pruning import _kept_spans
from pruning_encoder.data.fanoutqa import build_validation
from pruning_encoder.data.records import Record
from pruning_encoder.evaluation.benchmark import (
    FANOUTQA_METRICS,
    choose_threshold_for_answer_kept,
    evaluate_fanoutqa,
)
from pruning_encoder.evaluation.metrics import GRID, evaluate, format_table
from pruning_encoder.sentence_splitter import split_sentences

EXTRACTS = {row["title"]: row["extract"] for row in fanoutqa_summaries()}


def next_grid(threshold: float) -> float:
    """The grid threshold just above ``threshold``."""
    return float(GRID[GRID.tolist().index(threshold) + 1])


@pytest.fixture(scope="module")
def cases() -> dict[str, list[Record]]:
    return build_validation(fanoutqa_summaries(), fanoutqa_dev())


# --------------------------------------------------------------------------- the cases


def test_only_validation_half_questions_are_used(cases: dict[str, list[Record]]) -> None:
    dev = fanoutqa_dev()
    even = {
        q["id"] for q in dev if int(hashlib.sha256(q["id"].encode()).hexdigest()[0], 16) % 2 == 0
    }
    assert len(even) == 2 and len(dev) == 3
    for records in cases.values():
        assert {r.id["question"] for r in records} == even
        assert not any(r.query.startswith("RESERVED") for r in records)


def test_ranking_cases_are_the_evidence_and_its_nine_bm25_neighbours(
    cases: dict[str, list[Record]],
) -> None:
    ranking = cases["ranking"]
    # Every sub-question of the trees (nested ones too) whose evidence is a summary, any case.
    assert [r.query for r in ranking] == [
        "Who is the lead0 of Quorn0?",
        "Who is the lead1 of Quorn1?",
        "How many vexa2 has Quorn2?",
    ]
    for k, record in enumerate(ranking):
        assert len(record.texts) == 10
        assert record.labels == [1.0] + [0.0] * 9
        assert record.texts[0] == EXTRACTS[f"Evidence {k}"]
        assert record.relevant_spans[0] == [(0, len(record.texts[0]))]
        assert all(spans == [] for spans in record.relevant_spans[1:])
        cluster = {EXTRACTS[f"Near {k}.{j}"] for j in range(2)}
        cluster |= {EXTRACTS[f"Far {k}.{j}"] for j in range(7)}
        assert set(record.texts[1:]) == cluster


def test_pruning_cases_need_every_answer_in_the_evidence(cases: dict[str, list[Record]]) -> None:
    pruning = cases["pruning"]
    # Evidence 1's answers are Ann1 and Bob1: Bob1 is not in its summary, so no pruning case.
    assert [r.id["title"] for r in pruning] == ["EVIDENCE 0", "Evidence 2"]
    assert [r.answers for r in pruning] == [["ann0"], ["377"]]
    positions = set()
    for record, k in zip(pruning, (0, 2), strict=True):
        (context,) = record.texts
        evidence = EXTRACTS[f"Evidence {k}"]
        near = {EXTRACTS[f"Near {k}.{j}"] for j in range(2)}
        parts = context.split("\n")
        assert sorted(parts) == sorted([evidence, *near])
        assert record.labels == [1.0]
        ((start, end),) = record.relevant_spans[0]
        assert context[start:end] == evidence
        positions.add(parts.index(evidence))
        assert all(answer.lower() in evidence.lower() for answer in record.answers)
    assert len(positions) == 2  # shuffled: the evidence is not always first


def test_other_seed_other_order_same_cases() -> None:
    summaries, dev = fanoutqa_summaries(), fanoutqa_dev()
    first = build_validation(summaries, dev, seed=0)["pruning"]
    again = build_validation(summaries, dev, seed=0)["pruning"]
    assert [r.to_json() for r in first] == [r.to_json() for r in again]
    others = [build_validation(summaries, dev, seed=s)["pruning"] for s in range(1, 6)]
    assert any(o[0].texts != first[0].texts for o in others)
    for other in others:
        assert [sorted(r.texts[0].split("\n")) for r in other] == [
            sorted(r.texts[0].split("\n")) for r in first
        ]


# --------------------------------------------------------------------------- stubs


class ScoredModel:
    """``process()`` with sentence probabilities from ``score(question, sentence)``.

    It ranks a text by its best sentence and keeps the sentences above the threshold, with the
    spans ``process()`` returns.
    """

    def __init__(self, score: Any, *, ranking: bool = True) -> None:
        self.config = SimpleNamespace(default_threshold=0.5, has_ranking_head=ranking)
        self.score = score
        self.calls: list[int] = []

    def process(self, question: Any, context: Any, **options: Any) -> list[dict[str, Any]]:
        assert isinstance(question, list) and isinstance(context, list)
        self.calls.append(len(context))
        threshold = options["threshold"]
        threshold = self.config.default_threshold if threshold is None else threshold
        results = []
        for q, text in zip(question, context, strict=True):
            spans = split_sentences(text)
            probs = [self.score(q, text[s:e]) for s, e in spans]
            kept = _kept_spans(text, spans, np.array(probs) > threshold)
            result = {
                "pruned_context": "".join(text[s:e] for s, e in kept),
                "reranking_score": max(probs, default=0.0),
                "compression_rate": 0.0,
                "kept_spans": kept,
            }
            if options.get("return_sentence_probabilities"):
                result["sentence_spans"] = spans
                result["sentence_probabilities"] = probs
            results.append(result)
        return results


def answer_sentences_score(question: str, sentence: str) -> float:
    """0.9 for the sentences of the evidence summaries (``Quorn? is in``), 0.1 otherwise."""
    evidence = sentence.startswith(("Quorn0 is", "Quorn2 is", "The lead", "It is"))
    return 0.9 if evidence else 0.1


class BagOfWords:
    """A stub SentenceTransformer: hashed bag-of-words vectors, L2-normalised."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, strings: list[str], **options: Any) -> np.ndarray:
        assert options["normalize_embeddings"] and options["convert_to_numpy"]
        self.encoded.extend(strings)
        vectors = np.zeros((len(strings), 64))
        for row, string in enumerate(strings):
            for word in string.lower().replace(".", " ").replace("?", " ").split():
                vectors[row, zlib.crc32(word.encode()) % 64] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)


# --------------------------------------------------------------------------- choose the threshold


ANSWERS = [
    Record(
        "q",
        ["Alpha is first. Beta holds answer one. Gamma is last."],
        [[(16, 38)]],
        labels=[1.0],
        answers=["answer one"],
    ),
    Record(
        "q",
        ["Delta is first. Epsilon holds answer two."],
        [[(16, 41)]],
        labels=[1.0],
        answers=["answer two", "epsilon"],
    ),
]
SCORES = {"Beta": 0.62, "Epsilon": 0.41}


def answer_score(question: str, sentence: str) -> float:
    return next((p for word, p in SCORES.items() if sentence.startswith(word)), 0.2)


def test_choose_threshold_for_answer_kept_is_the_highest_reaching_the_target() -> None:
    model = ScoredModel(answer_score)
    # Both answers survive below 0.41, one below 0.62, none from 0.62 on.
    assert choose_threshold_for_answer_kept(model, ANSWERS, target=1.0) == 0.40
    assert choose_threshold_for_answer_kept(model, ANSWERS) == 0.40  # target 0.95
    assert choose_threshold_for_answer_kept(model, ANSWERS, target=0.5) == 0.61
    assert choose_threshold_for_answer_kept(model, ANSWERS, target=0.0) == 0.99
    assert model.calls == [2, 2, 2, 2]  # one process() pass each
    for target, chosen in ((1.0, 0.40), (0.5, 0.61)):
        kept = evaluate(model, ANSWERS, threshold=chosen, baselines=False)["methods"]["model"]
        above = evaluate(model, ANSWERS, threshold=next_grid(chosen), baselines=False)["methods"]
        assert kept["answer_kept"] >= target > above["model"]["answer_kept"]


def test_choose_threshold_for_answer_kept_none_when_unreachable() -> None:
    lost = Record("q", ["Alpha is here."], [[(0, 14)]], labels=[1.0], answers=["omega"])
    model = ScoredModel(answer_score)
    assert choose_threshold_for_answer_kept(model, [*ANSWERS, lost], target=1.0) is None
    assert choose_threshold_for_answer_kept(model, [*ANSWERS, lost], target=2 / 3) == 0.40
    no_answers = Record("q", ["Alpha is here."], [[(0, 14)]], labels=[1.0])
    assert choose_threshold_for_answer_kept(model, [no_answers], target=0.0) is None
    with pytest.raises(ValueError, match="target"):
        choose_threshold_for_answer_kept(model, ANSWERS, target=1.5)


def test_choose_threshold_for_answer_kept_tiny_model(tiny_model: PruningEncoder) -> None:
    pruning = build_validation(fanoutqa_summaries(), fanoutqa_dev())["pruning"]
    assert choose_threshold_for_answer_kept(tiny_model, pruning, target=0.0) == 0.99
    chosen = choose_threshold_for_answer_kept(tiny_model, pruning, target=1.0)
    if chosen is not None:
        row = evaluate(tiny_model, pruning, threshold=chosen, baselines=False)["methods"]["model"]
        assert row["answer_kept"] == 1.0
        assert chosen in GRID.tolist()


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
    # 3 relevant sentences of 7 per case: tp 6, fp 8, fn 0.
    assert keep_all["sentence_f2"] == pytest.approx(5 * 6 / (5 * 6 + 8))
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
    with caplog.at_level(logging.WARNING, logger="pruning_encoder.evaluation.benchmark"):
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
    with caplog.at_level(logging.WARNING, logger="pruning_encoder.evaluation.benchmark"):
        report = evaluate_fanoutqa(
            model, cases["ranking"], cases["pruning"], bi_encoder=Orthogonal()
        )
    assert report["bi_encoder_threshold"] == 0.01
    assert report["methods"]["bi-encoder"]["answer_kept"] == 0.0
    assert "fewer cases than the model" in caplog.text
