"""The FanOutQA validation cases, on synthetic summaries and dev questions."""

from __future__ import annotations

import hashlib
import math
import re

import pytest
from conftest import fanoutqa_dev, fanoutqa_summaries

from pruning_encoder.data.fanoutqa import build_validation
from pruning_encoder.data.records import Record

EXTRACTS = {row["title"]: row["extract"] for row in fanoutqa_summaries()}


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


def okapi_bm25(query: str, documents: list[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 with Lucene's IDF and lower-cased \\w+ tokens, written out from its definition."""
    docs = [re.findall(r"\w+", d.lower()) for d in documents]
    average = sum(map(len, docs)) / len(docs)
    scores = []
    for doc in docs:
        score = 0.0
        for term in re.findall(r"\w+", query.lower()):
            n = sum(term in d for d in docs)
            if n:
                idf = math.log(1 + (len(docs) - n + 0.5) / (n + 0.5))
                tf = doc.count(term)
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / average))
        scores.append(score)
    return scores


def test_ranking_cases_are_the_evidence_and_the_questions_nine_top_bm25_hits(
    cases: dict[str, list[Record]],
) -> None:
    ranking = cases["ranking"]
    # Every sub-question of the trees (nested ones too) whose evidence is a summary, any case.
    assert [r.query for r in ranking] == [
        "Who is the lead0 of Quorn0?",
        "Who is the lead1 of Quorn1?",
        "How many vexa2 has Quorn2?",
    ]
    documents = list(EXTRACTS.values())
    for k, record in enumerate(ranking):
        assert len(record.texts) == 10
        assert record.labels == [1.0] + [0.0] * 9
        assert record.texts[0] == EXTRACTS[f"Evidence {k}"]
        assert record.relevant_spans[0] == [(0, len(record.texts[0]))]
        assert all(spans == [] for spans in record.relevant_spans[1:])
        # The distractors are what BM25 retrieves for the question, over every summary but the
        # evidence, best first (the scores compared, so that ties may come in any order).
        scores = dict(zip(documents, okapi_bm25(record.query, documents), strict=True))
        del scores[record.texts[0]]
        assert len(set(record.texts[1:])) == 9
        best = sorted(scores.values(), reverse=True)[:9]
        assert [scores[t] for t in record.texts[1:]] == pytest.approx(best)
    # Hits of the question, not neighbours of the summary: the other clusters' evidence
    # summaries share "is", "the" and "of" with "Who is the lead0 of Quorn0?"
    assert EXTRACTS["Evidence 1"] in ranking[0].texts[1:3]
    assert ranking[2].texts[1:3] == [EXTRACTS["Near 2.0"], EXTRACTS["Near 2.1"]]


def test_pruning_cases_are_the_evidence_and_the_two_top_hits(
    cases: dict[str, list[Record]],
) -> None:
    pruning = cases["pruning"]
    # Evidence 1's answers are Ann1 and Bob1: Bob1 is not in its summary, so no pruning case.
    assert [r.id["title"] for r in pruning] == ["EVIDENCE 0", "Evidence 2"]
    assert [r.answers for r in pruning] == [["ann0"], ["377"]]
    positions = set()
    for record, k in zip(pruning, (0, 2), strict=True):
        (context,) = record.texts
        evidence = EXTRACTS[f"Evidence {k}"]
        (ranked,) = [r for r in cases["ranking"] if r.id["title"] == record.id["title"]]
        parts = context.split("\n")
        assert sorted(parts) == sorted([evidence, *ranked.texts[1:3]])
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
