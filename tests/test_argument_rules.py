"""One set of argument rules on every surface: Python, pipeline, CLI and service."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from transformers import pipeline

from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main
from pruning_encoder.server import create_app

DOCS = ["Paris is the capital of France.", "Cats purr.", "The dog barks."]


@pytest.mark.parametrize("top_k", [0, -1, True, 1.5])
def test_rank_and_process_refuse_the_same_top_k(tiny_model: PruningEncoder, top_k: object) -> None:
    with pytest.raises(ValueError, match="top_k must be a positive integer or None"):
        tiny_model.rank("q", DOCS, top_k=top_k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k must be a positive integer or None"):
        tiny_model.process("q", DOCS, top_k=top_k)


def test_rank_top_k_keeps_exactly_k(tiny_model: PruningEncoder) -> None:
    assert len(tiny_model.rank("q", DOCS, top_k=2)) == 2
    assert len(tiny_model.rank("q", DOCS, top_k=10)) == 3


@pytest.mark.parametrize("threshold", [True, False, "0.3", [0.3]])
def test_a_threshold_must_be_a_number(tiny_model: PruningEncoder, threshold: object) -> None:
    with pytest.raises(TypeError, match=r"threshold must be a number in \[0, 1\]"):
        tiny_model.process("q", "Paris is big.", threshold=threshold)


def test_the_pipeline_follows_process_on_empty_and_incomplete_inputs(
    tiny_model: PruningEncoder,
) -> None:
    pruner = pipeline("context-pruning", model=tiny_model.model, tokenizer=tiny_model.tokenizer)
    assert pruner([]) == []
    assert tiny_model.process("q", []) == []
    with pytest.raises(ValueError, match="An input misses 'context'"):
        pruner({"question": "q"})
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        pruner({"question": "q", "context": DOCS}, top_k=0)


def test_rank_skips_whitespace_only_lines(
    tiny_backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(tmp_path / "model")
    documents = tmp_path / "docs.txt"
    documents.write_text("Cats purr.\n   \n\t\nParis is big.\n")
    assert main(["rank", "--model", str(tmp_path / "model"), "--query", "q", str(documents)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert sorted(row.split("\t")[2] for row in rows) == ["Cats purr.", "Paris is big."]


def test_the_service_names_its_model_and_refuses_a_boolean_threshold(
    tiny_model: PruningEncoder,
) -> None:
    with TestClient(create_app(tiny_model)) as client:
        assert client.get("/info").json()["model_id"] == tiny_model.name_or_path
        assert tiny_model.name_or_path
        body = {"query": "q", "texts": ["Paris is big."], "prune": True, "threshold": True}
        response = client.post("/rerank", json=body)
        assert response.status_code == 422
        assert "threshold must be a number" in response.text
        body["threshold"] = 0.5
        assert client.post("/rerank", json=body).status_code == 200
