"""The ranking and pruning metrics on hand-made cases, and the table that shows them."""

from __future__ import annotations

import math

import pytest

from pruning_encoder.data.records import Record
from pruning_encoder.evaluation.metrics import (
    METRICS,
    format_table,
    mrr_at_k,
    ndcg_at_k,
    pruning_metrics,
    ranking_metrics,
)
from pruning_encoder.sentence_splitter import split_sentences

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
