"""The service's highlighting options (pre_tag/post_tag), sentence probabilities and its page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from pruning_encoder import PruningEncoder, highlight
from pruning_encoder.server import create_app

CONTEXTS = ["Paris is the capital of France. Cats purr.", "The dog is a <b>dog</b> & a cat."]
TAGS = {"pre_tag": "<em>", "post_tag": "</em>"}


@pytest.fixture(scope="module")
def model(tiny_backbone: Path) -> PruningEncoder:
    torch.manual_seed(0)
    return PruningEncoder(tiny_backbone, device="cpu")


@pytest.fixture(scope="module")
def client(model: PruningEncoder) -> Iterator[TestClient]:
    with TestClient(create_app(model)) as client:
        yield client


@pytest.mark.parametrize("threshold", [0.0, 0.5, 1.0])
def test_prune_with_tags_adds_highlighted(
    client: TestClient, model: PruningEncoder, threshold: float
) -> None:
    body = {"question": "capital?", "contexts": CONTEXTS, "threshold": threshold, **TAGS}
    results = client.post("/prune", json=body).json()["results"]
    expected = model.process("capital?", CONTEXTS, threshold=threshold)
    for result, context, truth in zip(results, CONTEXTS, expected, strict=True):
        assert result["highlighted"] == highlight(truth, context, **TAGS)
    assert results[0]["highlighted"] != results[0]["pruned_context"] or threshold == 1.0


def test_prune_without_tags_has_no_highlighted(client: TestClient) -> None:
    results = client.post("/prune", json={"question": "q", "contexts": CONTEXTS}).json()["results"]
    assert all("highlighted" not in r and "sentence_spans" not in r for r in results)


def test_rerank_with_tags_highlights_each_text(client: TestClient, model: PruningEncoder) -> None:
    body = {"query": "capital?", "texts": CONTEXTS, "prune": True, "threshold": 0.0, **TAGS}
    ranks = client.post("/rerank", json=body).json()
    assert {r["index"]: r["highlighted"] for r in ranks} == {
        i: f"<em>{context}</em>" for i, context in enumerate(CONTEXTS)
    }
    plain = client.post("/rerank", json={"query": "q", "texts": CONTEXTS, "prune": True}).json()
    assert all("highlighted" not in r for r in plain)


def test_prune_returns_sentence_probabilities_when_asked(
    client: TestClient, model: PruningEncoder
) -> None:
    body = {"question": "capital?", "contexts": CONTEXTS, "return_sentence_probabilities": True}
    results = client.post("/prune", json=body).json()["results"]
    expected = model.process("capital?", CONTEXTS, return_sentence_probabilities=True)
    for result, truth in zip(results, expected, strict=True):
        assert [tuple(s) for s in result["sentence_spans"]] == truth["sentence_spans"]
        assert result["sentence_probabilities"] == pytest.approx(truth["sentence_probabilities"])


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/prune", {"question": "q", "contexts": ["c"], "pre_tag": "<b>"}, "give both or neither"),
        ("/prune", {"question": "q", "contexts": ["c"], "post_tag": "</b>"}, "both or neither"),
        ("/prune", {"question": "q", "contexts": ["c"], "pre_tag": 1, "post_tag": "x"}, "pre_tag"),
        ("/rerank", {"query": "q", "texts": ["c"], **TAGS}, "they need prune: true"),
        ("/rerank", {"query": "q", "texts": ["c"], "prune": True, "pre_tag": "x"}, "both or"),
    ],
)
def test_tag_errors_are_422(client: TestClient, path: str, body: dict, message: str) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert response.json()["error_type"] == "Validation"


def test_the_page_is_served_and_self_contained(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'id="prune"' in page and 'id="threshold"' in page and "function renderAll" in page
    for external in ("<script src", "<link", "http://", "https://", "url(", "@import"):
        assert external not in page
    assert "/" not in client.get("/openapi.json").json()["paths"]
