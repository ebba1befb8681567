"""The threshold search: the curve is what an evaluation at each threshold reports, for the
model and the bi-encoder, and the pickers choose from it."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import fanoutqa_dev, fanoutqa_summaries
from evaluation_stubs import RECORDS, BagOfWords, ScoredModel, StubModel

from pruning_encoder import PruningEncoder
from pruning_encoder.data.fanoutqa import build_validation
from pruning_encoder.data.records import Record
from pruning_encoder.evaluation import (
    GRID,
    choose_bi_encoder_threshold,
    choose_threshold,
    choose_threshold_for_answer_kept,
    evaluate,
    sentence_probabilities,
    threshold_curve,
)
from pruning_encoder.evaluation.baselines import bi_encoder_similarities
from pruning_encoder.evaluation.metrics import PRUNING_METRICS, sentence_units
from pruning_encoder.evaluation.thresholds import (
    best_f_beta,
    highest_reaching,
    lowest_reaching,
)


def next_grid(threshold: float) -> float:
    """The grid threshold just above ``threshold``."""
    return float(GRID[GRID.tolist().index(threshold) + 1])


# --------------------------------------------------------------------------- the curve


def test_the_models_curve_is_evaluate_at_each_threshold(tiny_model: PruningEncoder) -> None:
    spans, probabilities = sentence_probabilities(tiny_model, RECORDS)
    curve = threshold_curve(RECORDS, spans, probabilities)
    assert [row["threshold"] for row in curve] == GRID.tolist()
    for row in curve[::7]:
        report = evaluate(tiny_model, RECORDS, threshold=row["threshold"], baselines=False)
        expected = report["methods"]["model"]
        assert {name: row[name] for name in PRUNING_METRICS} == pytest.approx(
            {name: expected[name] for name in PRUNING_METRICS}
        )
    assert len({row["removed_pct"] for row in curve}) > 1  # the sweep is not constant


def test_the_bi_encoders_curve_is_evaluate_at_each_threshold() -> None:
    encoder = BagOfWords()
    units = sentence_units(RECORDS)
    _, cosines = bi_encoder_similarities(
        RECORDS, encoder, units, batch_size=8, show_progress_bar=False
    )
    curve = threshold_curve(RECORDS, units, cosines, units=units)
    for row in curve[::5]:
        report = evaluate(
            StubModel(RECORDS), RECORDS, bi_encoder=encoder, bi_encoder_threshold=row["threshold"]
        )
        expected = report["methods"]["bi-encoder"]
        assert {name: row[name] for name in PRUNING_METRICS} == pytest.approx(
            {name: expected[name] for name in PRUNING_METRICS}
        )
    assert len({row["sentence_recall"] for row in curve}) > 1


def test_pickers() -> None:
    curve: list[dict[str, Any]] = [
        {"threshold": 0.1, "answer_kept": 1.0, "sentence_precision": 0.5, "sentence_recall": 1.0},
        {"threshold": 0.2, "answer_kept": 0.9, "sentence_precision": 0.5, "sentence_recall": 1.0},
        {"threshold": 0.3, "answer_kept": 0.5, "sentence_precision": None, "sentence_recall": 0.0},
        {"threshold": 0.4, "answer_kept": None, "sentence_precision": None, "sentence_recall": 0},
    ]
    assert highest_reaching(curve, "answer_kept", 0.9) == 0.2
    assert highest_reaching(curve, "answer_kept", 0.9 + 1e-12) == 0.2  # float noise
    assert highest_reaching(curve, "answer_kept", 1.1) is None
    assert lowest_reaching(curve, "answer_kept", 0.5) == 0.1
    assert best_f_beta(curve, 2.0) == 0.1  # ties go to the lowest threshold
    curve[1]["sentence_precision"] = 0.6
    assert best_f_beta(curve, 2.0) == 0.2


# --------------------------------------------------------------------------- sentence F-beta


def test_choose_threshold_finds_the_best_grid_value() -> None:
    model = StubModel(RECORDS)
    # Any threshold in [0.30, 0.70) separates 0.7 from 0.3 perfectly; ties go to the lowest.
    assert choose_threshold(model, RECORDS) == 0.3
    assert model.calls == [5]  # one process() pass


def test_choose_threshold_tiny_model(tiny_model: PruningEncoder) -> None:
    first = choose_threshold(tiny_model, RECORDS, batch_size=2)
    assert first in GRID.tolist()
    assert 0.01 <= first <= 0.99
    assert choose_threshold(tiny_model.model, RECORDS) == first


def test_choose_bi_encoder_threshold_is_the_best_f2_of_its_curve() -> None:
    encoder = BagOfWords()
    chosen = choose_bi_encoder_threshold(RECORDS, encoder)
    f2 = {
        t: evaluate(StubModel(RECORDS), RECORDS, bi_encoder=encoder, bi_encoder_threshold=t)[
            "methods"
        ]["bi-encoder"]["sentence_f2"]
        or 0.0
        for t in GRID.tolist()[::3]
    }
    at_chosen = evaluate(
        StubModel(RECORDS), RECORDS, bi_encoder=encoder, bi_encoder_threshold=chosen
    )
    assert at_chosen["methods"]["bi-encoder"]["sentence_f2"] >= max(f2.values())


# --------------------------------------------------------------------------- answer kept


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
