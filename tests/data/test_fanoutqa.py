"""The FanOutQA validation cases, on synthetic summaries and dev questions."""

from __future__ import annotations

import hashlib

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
