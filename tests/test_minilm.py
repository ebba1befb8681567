"""Every loading path on the real MiniLM backbone gives the same scores (1e-5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline

from pruning_encoder import PruningEncoder

PAIRS = [
    ("Who wrote Hamlet?", "Hamlet is a tragedy written by William Shakespeare around 1600."),
    ("What is the capital of France?", "Paris is the capital and largest city of France."),
    ("What is the capital of France?", "The cheetah is the fastest land animal."),
]
CONTEXT = (
    "Paris is the capital and most populous city of France. It has an estimated population of "
    "2,102,650 residents in January 2023 in an area of more than 105 km2. Since the 17th century, "
    "Paris has been one of the world's major centres of finance, diplomacy, commerce, culture, "
    "fashion, and gastronomy."
)


@pytest.fixture(scope="module")
def minilm_saved(
    minilm_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PruningEncoder, Path]:
    torch.manual_seed(0)
    model = PruningEncoder(minilm_path, device="cpu")
    directory = tmp_path_factory.mktemp("minilm") / "model"
    model.save_pretrained(directory, export_ranking_model=True)
    return model, directory


def test_minilm_settings(minilm_saved: tuple[PruningEncoder, Path]) -> None:
    model, _ = minilm_saved
    assert model.max_length == 512
    assert model.config.encoder_config.hidden_size == 384


@pytest.mark.parametrize("subdir", ["ranking_model", "ranking_model_standalone"])
def test_ranking_model_loads_everywhere_with_equal_scores(
    minilm_saved: tuple[PruningEncoder, Path], subdir: str
) -> None:
    model, directory = minilm_saved
    expected = model.predict(PAIRS)
    path = str(directory / subdir)
    np.testing.assert_allclose(CrossEncoder(path, device="cpu").predict(PAIRS), expected, atol=1e-5)
    plain = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        logits = plain(
            **tokenizer(*map(list, zip(*PAIRS, strict=True)), padding=True, return_tensors="pt")
        ).logits
    np.testing.assert_allclose(torch.sigmoid(logits[:, 0]).numpy(), expected, atol=1e-5)
    classifier = pipeline("text-classification", model=path, device="cpu")
    scores = [classifier({"text": q, "text_pair": d})["score"] for q, d in PAIRS]
    np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_top_level_directory_loads_with_auto_classes(
    minilm_saved: tuple[PruningEncoder, Path],
) -> None:
    model, directory = minilm_saved
    auto = AutoModel.from_pretrained(directory).eval()
    result = auto.process("What is the capital of France?", CONTEXT)
    expected = model.process("What is the capital of France?", CONTEXT)
    assert result["kept_spans"] == expected["kept_spans"]
    assert result["reranking_score"] == pytest.approx(expected["reranking_score"], abs=1e-5)
    loaded = PruningEncoder.from_pretrained(directory, device="cpu")
    np.testing.assert_allclose(loaded.predict(PAIRS), model.predict(PAIRS), atol=1e-5)


def test_process_on_a_real_context(minilm_saved: tuple[PruningEncoder, Path]) -> None:
    model, _ = minilm_saved
    result = model.process(
        "What is the capital of France?", CONTEXT, threshold=0.0, return_sentence_probabilities=True
    )
    assert len(result["sentence_spans"]) == 3
    assert result["pruned_context"] == CONTEXT
    long_context = " ".join([CONTEXT] * 40)
    long = model.process("What is the capital of France?", long_context, threshold=0.0)
    assert long["pruned_context"] == long_context


def test_the_exported_ranker_reads_the_models_window(minilm_path: Path, tmp_path: Path) -> None:
    model = PruningEncoder(minilm_path, max_length=48, device="cpu")
    model.save_pretrained(tmp_path / "model", export_ranking_model=True)
    model.export_ranking_model(tmp_path / "ranker")
    question = "What is the capital of France?"
    for path in ("model/ranking_model", "model/ranking_model_standalone", "ranker"):
        ranker = CrossEncoder(str(tmp_path / path), device="cpu")
        assert ranker.max_seq_length == 48
        assert AutoTokenizer.from_pretrained(tmp_path / path).model_max_length == 48
        # A pair that fits one 48-token window scores the same on both sides.
        fits = (question, "Paris is the capital and largest city of France.")
        np.testing.assert_allclose(ranker.predict([fits]), model.predict([fits]), atol=1e-5)
    assert AutoTokenizer.from_pretrained(tmp_path / "model").model_max_length == 48
