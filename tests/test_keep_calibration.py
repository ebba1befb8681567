"""Calibrated keep-probabilities: the maps, their checks, the fit, and every place the model runs
(process(), save/load, remote code, the pipeline, the ONNX backend, the calibrate command)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import pipeline

from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main
from pruning_encoder.data.records import load_records, write_records
from pruning_encoder.evaluation.keep_calibration_fit import (
    fit_isotonic,
    fit_platt,
    labelled_sentence_probabilities,
    reliability,
)
from pruning_encoder.keep_calibration import apply_keep_calibration, check_keep_calibration
from pruning_encoder.saving import PIPELINE_TASK

PLATT = {"method": "platt", "a": 0.8, "b": 1.5}
ISOTONIC = {"method": "isotonic", "x": [0.1, 0.4, 0.6, 0.9], "y": [0.0, 0.2, 0.2, 0.95]}
QUESTION = "where is the cat?"
CONTEXTS = [
    "Paris is the capital of France. The cat is in the city. It was a dog.",
    "What is the capital? Paris. Cats purr in the city of paris.",
    " ".join(f"Sentence {i} is about the cat." for i in range(30)),  # several windows
]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def sharpened(tiny_backbone: Path) -> PruningEncoder:
    torch.manual_seed(0)
    model = PruningEncoder(tiny_backbone, device="cpu", dtype="float32")
    with torch.no_grad():  # random heads barely vary their outputs: sharpen them
        model.model.backbone.classifier.weight.mul_(300)
        model.model.pruning_head.classifier.weight.mul_(30)
    return model


@pytest.fixture
def calibrated(sharpened: PruningEncoder) -> Any:
    sharpened.config.keep_calibration = PLATT
    yield sharpened
    sharpened.config.keep_calibration = None


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    for a, b in zip(got, want, strict=True):
        assert a["pruned_context"] == b["pruned_context"]
        assert a["kept_spans"] == b["kept_spans"]
        assert a["reranking_score"] == pytest.approx(b["reranking_score"], abs=1e-6)
        assert a["sentence_probabilities"] == pytest.approx(b["sentence_probabilities"], abs=1e-6)


def raw_and_calibrated(model: PruningEncoder, **options: Any) -> tuple[list, list]:
    kept = model.config.keep_calibration
    model.config.keep_calibration = None
    try:
        raw = model.process(QUESTION, CONTEXTS, return_sentence_probabilities=True, **options)
    finally:
        model.config.keep_calibration = kept
    got = model.process(QUESTION, CONTEXTS, return_sentence_probabilities=True, **options)
    return raw, got


# --------------------------------------------------------------------------- the maps


def test_none_is_the_identity() -> None:
    p = np.array([0.0, 0.01, 0.5, 1.0])
    assert apply_keep_calibration(p, None) is p
    assert check_keep_calibration(None) is None


@pytest.mark.parametrize("calibration", [PLATT, ISOTONIC], ids=["platt", "isotonic"])
def test_maps_are_monotonic_within_bounds_and_keep_unscored_sentences_at_zero(
    calibration: dict[str, Any],
) -> None:
    p = np.concatenate([[0.0, 1e-300, 1e-12], np.linspace(0, 1, 1001), [1 - 1e-12, 1.0]])
    p = np.unique(p)
    with np.errstate(all="raise"):
        mapped = apply_keep_calibration(p, calibration)
    assert mapped.shape == p.shape and mapped.dtype == np.float64
    assert np.all(np.diff(mapped) >= 0)
    assert np.all((mapped >= 0) & (mapped <= 1))
    assert mapped[0] == 0.0  # a sentence of no tokens
    if calibration["method"] == "platt":
        assert mapped[-1] == 1.0
        inside = (p > 0) & (p < 0.999)  # strictly: the order of sentences is kept
        assert np.all(np.diff(mapped[inside]) > 0)
        assert mapped[p == 0.5][0] == pytest.approx(sigmoid(np.array(1.5)))
    else:
        assert mapped[p == 0.25][0] == pytest.approx(0.1)  # linear between knots
        assert mapped[p == 0.05][0] == 0.0 and mapped[-1] == 0.95  # the ends' y outside


@pytest.mark.parametrize(
    ("calibration", "message"),
    [
        ([0.8, 1.5], "must be a dict such as"),
        ({"method": "temperature", "t": 2.0}, "has method 'temperature': expected one of"),
        ({"method": "platt", "a": 1.0}, r"takes the keys \['a', 'b', 'method'\]"),
        ({"method": "platt", "a": 1.0, "b": 0.0, "c": 1}, "takes the keys"),
        ({"method": "platt", "a": -0.5, "b": 0.0}, "Platt slope a must be positive"),
        ({"method": "platt", "a": 0, "b": 0.0}, "Platt slope a must be positive"),
        ({"method": "platt", "a": "1", "b": 0.0}, "a must be a finite number, got '1'"),
        ({"method": "platt", "a": 1.0, "b": float("nan")}, "b must be a finite number"),
        ({"method": "platt", "a": True, "b": 0.0}, "a must be a finite number, got True"),
        ({"method": "isotonic", "x": [0.1], "y": [0.5]}, "same length, at least 2"),
        ({"method": "isotonic", "x": [0.1, 0.2], "y": [0.5]}, "same length"),
        ({"method": "isotonic", "x": [0.2, 0.2], "y": [0.1, 0.5]}, "x must be strictly"),
        ({"method": "isotonic", "x": [0.1, 0.2], "y": [0.5, 0.1]}, "y must be non-decreasing"),
        ({"method": "isotonic", "x": [0.1, 1.2], "y": [0.1, 0.5]}, r"x must lie within \[0, 1\]"),
        ({"method": "isotonic", "x": "0.1", "y": [0.1, 0.5]}, "x must be a list of numbers"),
    ],
)
def test_malformed_calibrations_are_refused(calibration: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"keep_calibration.*{message}"):
        check_keep_calibration(calibration)


def test_a_saved_model_with_a_malformed_calibration_is_refused_on_load(
    sharpened: PruningEncoder, tmp_path: Path
) -> None:
    sharpened.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["keep_calibration"] = {"method": "platt", "a": -1.0, "b": 0.0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="keep_calibration's Platt slope a must be positive"):
        PruningEncoder(tmp_path, device="cpu")


# --------------------------------------------------------------------------- the fit


def test_platt_recovers_a_known_relation() -> None:
    rng = np.random.default_rng(0)
    logits = rng.uniform(-9, 1, 40_000)  # raw probabilities crowd low, as the bundled model's
    relevant = rng.random(len(logits)) < sigmoid(1.5 * logits + 4.0)
    fitted = fit_platt(sigmoid(logits), relevant)
    assert fitted["method"] == "platt"
    assert fitted["a"] == pytest.approx(1.5, abs=0.06)
    assert fitted["b"] == pytest.approx(4.0, abs=0.2)
    assert check_keep_calibration(fitted) == fitted


def test_isotonic_fits_observed_rates_with_few_knots() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.1, 20_000)
    relevant = rng.random(len(p)) < 10 * p  # the chance of relevance is 10 p
    fitted = fit_isotonic(p, relevant)
    assert check_keep_calibration(fitted) == fitted
    assert len(fitted["x"]) < 200
    before, after = (
        reliability(p, relevant),
        reliability(apply_keep_calibration(p, fitted), relevant),
    )
    assert before["ece"] > 0.3 and after["ece"] < 0.02
    assert [row["sentences"] for row in after["bins"]] == [4000] * 5
    uniform = reliability(p, relevant, bins=10, strategy="uniform")
    assert [(row["low"] >= 0, row["high"] < 0.1) for row in uniform["bins"]] == [(True, True)]
    assert uniform["ece"] == pytest.approx(before["ece"], abs=0.01)
    with pytest.raises(ValueError, match="Unknown strategy 'equal'"):
        reliability(p, relevant, strategy="equal")


@pytest.mark.parametrize("fit", [fit_platt, fit_isotonic])
def test_a_fit_needs_both_classes(fit: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="needs relevant and irrelevant sentences; these 3 are"):
        fit(np.array([0.1, 0.2, 0.3]), np.array([False, False, False]))


def test_platt_refuses_probabilities_that_fall_with_relevance() -> None:
    p = np.linspace(0.01, 0.99, 200)
    with pytest.raises(ValueError, match="do not rise with relevance"):
        fit_platt(p, p < 0.5)


# --------------------------------------------------------------------------- process()


def test_process_returns_calibrated_probabilities_in_the_same_order(
    calibrated: PruningEncoder,
) -> None:
    raw, got = raw_and_calibrated(calibrated)
    for before, after in zip(raw, got, strict=True):
        probabilities = np.array(before["sentence_probabilities"])
        assert after["sentence_probabilities"] == pytest.approx(
            apply_keep_calibration(probabilities, PLATT).tolist(), abs=1e-12
        )
        assert np.array_equal(
            np.argsort(probabilities, kind="stable"),
            np.argsort(after["sentence_probabilities"], kind="stable"),
        )
        assert after["reranking_score"] == before["reranking_score"]
    # The threshold compares the calibrated probability.
    calibrated_all = np.concatenate([r["sentence_probabilities"] for r in got])
    threshold = float(np.median(calibrated_all))
    _, kept = raw_and_calibrated(calibrated, threshold=threshold)
    for text, result in zip(CONTEXTS, kept, strict=True):
        keep = np.array(result["sentence_probabilities"]) > threshold
        spans = [span for span, k in zip(result["sentence_spans"], keep, strict=True) if k]
        expected = "".join(text[s:e] for s, e in spans)
        assert result["pruned_context"].replace(" ", "") == expected.replace(" ", "")
    assert [r["pruned_context"] for r in kept] == [
        r["pruned_context"] for r in calibrated.process(QUESTION, CONTEXTS, threshold=threshold)
    ]


def records_labelled_by(model: PruningEncoder, count: int = 12) -> list[dict[str, Any]]:
    """Records whose relevant sentences are those the model scores highest (with a little
    noise), so that a fit of the model's own probabilities rises with relevance."""
    rng = np.random.default_rng(0)
    texts = [CONTEXTS[i % 2] for i in range(count)]
    questions = [f"where is the {'cat' if i % 3 else 'dog'}?" for i in range(count)]
    results = model.process(questions, texts, return_sentence_probabilities=True)
    median = np.median(np.concatenate([r["sentence_probabilities"] for r in results]))
    rows = []
    for question, text, result in zip(questions, texts, results, strict=True):
        spans = [
            list(span)
            for span, p in zip(
                result["sentence_spans"], result["sentence_probabilities"], strict=True
            )
            if (p > median) != (rng.random() < 0.1)
        ]
        rows.append(
            {
                "query": question,
                "texts": [text],
                "labels": [int(bool(spans))],
                "relevant_spans": [spans],
            }
        )
    return rows


def test_calibrate_keep_probabilities_sets_the_fit_and_save_keeps_it(
    sharpened: PruningEncoder, tmp_path: Path
) -> None:
    rows = records_labelled_by(sharpened)
    try:
        fitted = sharpened.calibrate_keep_probabilities(rows)
        assert sharpened.config.keep_calibration == fitted
        assert fitted["method"] == "platt" and fitted["a"] > 0
        # The fit reads the raw probabilities, whatever calibration the model has.
        assert sharpened.calibrate_keep_probabilities(rows) == pytest.approx(fitted)
        probabilities, relevant = labelled_sentence_probabilities(sharpened, load_records(rows))
        raw, _ = labelled_sentence_probabilities(sharpened, load_records(rows), raw=True)
        assert probabilities == pytest.approx(apply_keep_calibration(raw, fitted))
        assert relevant.any() and not relevant.all()
        isotonic = sharpened.calibrate_keep_probabilities(rows, method="isotonic")
        assert check_keep_calibration(isotonic) == isotonic
        sharpened.config.keep_calibration = fitted

        sharpened.save_pretrained(tmp_path)
        assert json.loads((tmp_path / "config.json").read_text())["keep_calibration"] == fitted
        record = json.loads((tmp_path / "pruning_encoder_config.json").read_text())
        assert record["keep_calibration"] == fitted
        loaded = PruningEncoder(tmp_path, device="cpu")
        assert loaded.config.keep_calibration == fitted
        options = {"threshold": 0.5, "return_sentence_probabilities": True}
        assert_same(
            loaded.process(QUESTION, CONTEXTS, **options),
            sharpened.process(QUESTION, CONTEXTS, **options),
        )
        with pytest.raises(ValueError, match="Unknown method 'temperature'"):
            sharpened.calibrate_keep_probabilities(rows, method="temperature")
    finally:
        sharpened.config.keep_calibration = None


def test_a_model_saved_without_calibration_loads_and_behaves_as_before(
    sharpened: PruningEncoder, tmp_path: Path
) -> None:
    sharpened.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config.pop("keep_calibration") is None
    (tmp_path / "config.json").write_text(json.dumps(config))  # as saved before the field
    loaded = PruningEncoder(tmp_path, device="cpu")
    assert loaded.config.keep_calibration is None
    options = {"threshold": 0.5, "return_sentence_probabilities": True}
    assert_same(
        loaded.process(QUESTION, CONTEXTS, **options),
        sharpened.process(QUESTION, CONTEXTS, **options),
    )


# --------------------------------------------------------------------------- everywhere it runs


@pytest.fixture
def saved_calibrated(calibrated: PruningEncoder, tmp_path: Path) -> Path:
    directory = tmp_path / "calibrated"
    calibrated.save_pretrained(directory)
    return directory


@pytest.mark.slow
def test_remote_code_without_the_package_applies_the_calibration(
    calibrated: PruningEncoder,
    saved_calibrated: Path,
    run_without_the_package: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    script = textwrap.dedent(
        f"""
        import json
        from transformers import AutoModel, pipeline
        path = {str(saved_calibrated)!r}
        model = AutoModel.from_pretrained(path, trust_remote_code=True)
        options = {{"threshold": 0.5, "return_sentence_probabilities": True}}
        direct = model.process({QUESTION!r}, {CONTEXTS!r}, **options)
        pruner = pipeline("context-pruning", model=path, trust_remote_code=True, device="cpu")
        piped = pruner(question={QUESTION!r}, context={CONTEXTS[0]!r}, **options)
        print(json.dumps({{"direct": direct, "piped": piped}}))
        """
    )
    remote = json.loads(run_without_the_package(script).stdout.strip().splitlines()[-1])
    expected = calibrated.process(
        QUESTION, CONTEXTS, threshold=0.5, return_sentence_probabilities=True
    )
    for got, want in zip(
        [*remote["direct"], remote["piped"]], [*expected, expected[0]], strict=True
    ):
        assert got["sentence_probabilities"] == pytest.approx(
            want["sentence_probabilities"], abs=1e-6
        )
        assert got["pruned_context"] == want["pruned_context"]


def test_the_pipeline_of_an_in_memory_model_applies_it(calibrated: PruningEncoder) -> None:
    pruner = pipeline(PIPELINE_TASK, model=calibrated.model, device="cpu")
    got = pruner(question=QUESTION, context=CONTEXTS[0], return_sentence_probabilities=True)
    want = calibrated.process(QUESTION, CONTEXTS[0], return_sentence_probabilities=True)
    assert got["sentence_probabilities"] == pytest.approx(want["sentence_probabilities"])


def test_the_onnx_backend_applies_it(calibrated: PruningEncoder, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    calibrated.export_onnx(tmp_path / "onnx-model", quantize=False)
    fast = PruningEncoder(tmp_path / "onnx-model", backend="onnx")
    assert fast.config.keep_calibration == PLATT
    options = {"threshold": 0.5, "return_sentence_probabilities": True}
    want = calibrated.process(QUESTION, CONTEXTS, **options)
    got = fast.process(QUESTION, CONTEXTS, **options)
    for a, b in zip(want, got, strict=True):
        assert b["sentence_probabilities"] == pytest.approx(a["sentence_probabilities"], abs=1e-4)
        assert b["pruned_context"] == a["pruned_context"]


def test_calibrate_command_fits_probabilities_and_saves_them(
    sharpened: PruningEncoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, saved, data = tmp_path / "model", tmp_path / "calibrated", tmp_path / "data.jsonl"
    sharpened.save_pretrained(model_dir)
    rows = [row for row in records_labelled_by(sharpened, 24) if row["relevant_spans"][0]]
    write_records(load_records(rows), data)  # calibrate wants spans in every record
    argv = ["calibrate", "--model", str(model_dir), "--data", str(data), "--json"]
    argv += ["--target-answer-kept", "0.9", "--fit-probabilities", "platt", "--save", str(saved)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    loaded = PruningEncoder(saved, device="cpu")
    assert loaded.config.keep_calibration["method"] == "platt"
    assert loaded.config.default_threshold == result["threshold"]
    assert main([*argv[:-2], "--fit-probabilities", "logistic"]) == 2
    assert "invalid choice: 'logistic'" in capsys.readouterr().err
