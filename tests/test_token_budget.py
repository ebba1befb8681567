"""A token budget instead of (or with) a threshold: process(max_tokens=N) and every surface."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from transformers import pipeline

from pruning_encoder import PruningEncoder, split_sentences
from pruning_encoder.checks import check_max_tokens
from pruning_encoder.cli import main
from pruning_encoder.integrations.langchain import PruningEncoderCompressor
from pruning_encoder.server import create_app
from pruning_encoder.token_budget import select_sentences

QUESTION = "Where is the Eiffel Tower?"
CONTEXTS = [
    "The Eiffel Tower is in Paris. It was finished in 1889. Cats purr loudly at night. "
    "Paris is the capital of France.",
    "Berlin is in Germany. The Eiffel Tower is made of wrought iron. Dogs bark.",
]


def fixed_counts(counts: list[list[int]]) -> Any:
    return lambda d, sentences: [counts[d][s] for s in sentences]


def kept(selections: list[Any]) -> list[list[int]]:
    return [np.flatnonzero(selection.keep).tolist() for selection in selections]


# --- select_sentences: the rule itself ---------------------------------------------------------


def test_most_probable_first_across_documents_in_original_order() -> None:
    probabilities = [np.array([0.9, 0.2, 0.6]), np.array([0.7, 0.95])]
    counts = [[10, 10, 10], [10, 10]]
    selections = select_sentences(
        probabilities,
        threshold=0.0,
        titles=[False, False],
        max_tokens=30,
        count_tokens=fixed_counts(counts),
    )
    # 0.95, 0.9 and 0.7 fit 30 tokens; 0.6 would not.
    assert kept(selections) == [[0], [0, 1]]
    assert [s.kept_tokens for s in selections] == [10, 20]


def test_a_sentence_that_does_not_fit_is_skipped_for_smaller_ones() -> None:
    selections = select_sentences(
        [np.array([0.9, 0.8, 0.7])],
        threshold=0.0,
        titles=[False],
        max_tokens=12,
        count_tokens=fixed_counts([[5, 20, 7]]),
    )
    assert kept(selections) == [[0, 2]]
    assert selections[0].kept_tokens == 12


def test_threshold_and_budget_both_hold() -> None:
    selections = select_sentences(
        [np.array([0.9, 0.1, 0.8])],
        threshold=0.5,
        titles=[False],
        max_tokens=1000,
        count_tokens=fixed_counts([[5, 5, 5]]),
    )
    assert kept(selections) == [[0, 2]]


def test_a_title_is_paid_for_by_the_sentence_that_brings_it() -> None:
    probabilities = [np.array([0.0, 0.9, 0.8])]
    counts = fixed_counts([[4, 10, 3]])
    with_title = select_sentences(
        probabilities, threshold=0.5, titles=[True], max_tokens=14, count_tokens=counts
    )
    assert kept(with_title) == [[0, 1]] and with_title[0].kept_tokens == 14
    # Too small for sentence 1 and its title: the next sentence brings the title instead.
    smaller = select_sentences(
        probabilities, threshold=0.5, titles=[True], max_tokens=8, count_tokens=counts
    )
    assert kept(smaller) == [[0, 2]] and smaller[0].kept_tokens == 7


@pytest.mark.parametrize("budget", [0, 1, 2])
def test_a_sentence_of_no_tokens_costs_one(budget: int) -> None:
    # A sentence of zero-width characters tokenizes to nothing: it never rides along for free.
    selections = select_sentences(
        [np.array([0.9, 0.8])],
        threshold=0.0,
        titles=[False],
        max_tokens=budget,
        count_tokens=fixed_counts([[0, 1]]),
    )
    assert kept(selections) == [[[]], [[0]], [[0, 1]]][budget]
    assert selections[0].kept_tokens == budget


def test_process_budget_of_zero_keeps_nothing(tiny_model: PruningEncoder) -> None:
    context = "\u200b\u200b\u200b"
    assert tokens_of(tiny_model, context) == 0
    result = tiny_model.process(QUESTION, context, threshold=0.0, max_tokens=0)
    assert result["pruned_context"] == "" and result["kept_tokens"] == 0
    mixed = tiny_model.process(
        QUESTION, "The Eiffel Tower is in Paris.\n\n" + context, threshold=0.0, max_tokens=0
    )
    assert mixed["pruned_context"] == "" and mixed["kept_spans"] == []


def test_without_a_budget_nothing_is_counted() -> None:
    selections = select_sentences([np.array([0.9, 0.1])], threshold=0.5, titles=[False])
    assert kept(selections) == [[0]] and selections[0].kept_tokens is None


@pytest.mark.parametrize("value", [True, 2.5, "300", [3]])
def test_a_budget_must_be_an_int(value: object) -> None:
    with pytest.raises(TypeError, match="max_tokens must be an int or None"):
        check_max_tokens(value)


def test_a_budget_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_tokens must be at least 0, got -1"):
        check_max_tokens(-1)
    assert check_max_tokens(np.int64(7)) == 7


# --- process() ---------------------------------------------------------------------------------


def tokens_of(model: PruningEncoder, text: str) -> int:
    return len(model.tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("budget", [0, 5, 12, 25, 10_000])
def test_process_keeps_at_most_the_budget(tiny_model: PruningEncoder, budget: int) -> None:
    results = tiny_model.process(QUESTION, CONTEXTS, threshold=0.0, max_tokens=budget)
    total = sum(result["kept_tokens"] for result in results)
    assert total <= budget
    for context, result in zip(CONTEXTS, results, strict=True):
        sentences = [context[s:e] for s, e in split_sentences(context)]
        kept_sentences = [s for s in sentences if s in result["pruned_context"]]
        assert result["kept_tokens"] == sum(tokens_of(tiny_model, s) for s in kept_sentences)
    if budget == 10_000:  # threshold 0 and a budget that fits everything: nothing is pruned
        assert [r["pruned_context"] for r in results] == CONTEXTS


def test_process_budget_keeps_the_most_probable_sentences(tiny_model: PruningEncoder) -> None:
    full = tiny_model.process(
        QUESTION, CONTEXTS[0], threshold=0.0, return_sentence_probabilities=True
    )
    spans, probabilities = full["sentence_spans"], full["sentence_probabilities"]
    best = int(np.argmax(probabilities))
    best_text = CONTEXTS[0][slice(*spans[best])]
    result = tiny_model.process(
        QUESTION, CONTEXTS[0], threshold=0.0, max_tokens=tokens_of(tiny_model, best_text)
    )
    assert result["pruned_context"] == best_text


def test_process_without_a_budget_is_unchanged(tiny_model: PruningEncoder) -> None:
    plain = tiny_model.process(QUESTION, CONTEXTS)
    assert all("kept_tokens" not in result for result in plain)
    generous = tiny_model.process(QUESTION, CONTEXTS, max_tokens=10_000)
    assert [r["pruned_context"] for r in generous] == [r["pruned_context"] for r in plain]


def test_process_budget_spans_each_question_separately(tiny_model: PruningEncoder) -> None:
    results = tiny_model.process(
        [QUESTION, "Who purrs?"], [CONTEXTS, CONTEXTS], threshold=0.0, max_tokens=12
    )
    for group in results:
        assert 0 < sum(result["kept_tokens"] for result in group) <= 12


def test_process_budget_applies_after_top_k(tiny_model: PruningEncoder) -> None:
    results = tiny_model.process(QUESTION, CONTEXTS, threshold=0.0, top_k=1, max_tokens=10_000)
    assert len(results) == 1
    assert results[0]["pruned_context"] == CONTEXTS[results[0]["index"]]


def test_process_refuses_a_bad_budget(tiny_model: PruningEncoder) -> None:
    with pytest.raises(ValueError, match="max_tokens must be at least 0"):
        tiny_model.process(QUESTION, CONTEXTS, max_tokens=-5)
    with pytest.raises(TypeError, match="max_tokens must be an int"):
        tiny_model.process(QUESTION, CONTEXTS, max_tokens=True)


# --- the other surfaces ------------------------------------------------------------------------


def test_pipeline_passes_the_budget(tiny_model: PruningEncoder) -> None:
    pruner = pipeline("context-pruning", model=tiny_model.model, tokenizer=tiny_model.tokenizer)
    expected = tiny_model.process(QUESTION, CONTEXTS[0], threshold=0.0, max_tokens=12)
    output = pruner(question=QUESTION, context=CONTEXTS[0], threshold=0.0, max_tokens=12)
    assert output == expected


def test_cli_prune_with_a_budget(
    tiny_model: PruningEncoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny_model.save_pretrained(tmp_path / "model")
    context = tmp_path / "context.txt"
    context.write_text(CONTEXTS[0])
    args = ["prune", "--model", str(tmp_path / "model"), "--device", "cpu", "--question"]
    assert (
        main([*args, QUESTION, str(context), "--threshold", "0", "--max-tokens", "12", "--json"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    expected = tiny_model.process(QUESTION, CONTEXTS[0], threshold=0.0, max_tokens=12)
    assert printed["pruned_context"] == expected["pruned_context"]
    assert printed["kept_tokens"] == expected["kept_tokens"] <= 12
    assert main([*args, QUESTION, str(context), "--max-tokens", "-1"]) == 2
    assert "must be at least 0" in capsys.readouterr().err


def test_service_prune_and_rerank_with_a_budget(tiny_model: PruningEncoder) -> None:
    expected = tiny_model.process(QUESTION, CONTEXTS, threshold=0.0, max_tokens=12)
    with TestClient(create_app(tiny_model)) as client:
        body = {"question": QUESTION, "contexts": CONTEXTS, "threshold": 0.0, "max_tokens": 12}
        results = client.post("/prune", json=body).json()["results"]
        assert [r["pruned_context"] for r in results] == [r["pruned_context"] for r in expected]
        assert [r["kept_tokens"] for r in results] == [r["kept_tokens"] for r in expected]
        del body["max_tokens"]
        assert all(
            "kept_tokens" not in r for r in client.post("/prune", json=body).json()["results"]
        )
        rerank = {"query": QUESTION, "texts": CONTEXTS, "prune": True, "threshold": 0.0}
        ranks = client.post("/rerank", json={**rerank, "max_tokens": 12}).json()
        assert {r["index"]: r["pruned_text"] for r in ranks} == {
            i: r["pruned_context"] for i, r in enumerate(expected)
        }
        for bad in (-1, 2.5, True, "12"):
            response = client.post("/prune", json={**body, "max_tokens": bad})
            assert response.status_code == 422, bad


def test_langchain_compressor_with_a_budget(tiny_model: PruningEncoder) -> None:
    from langchain_core.documents import Document

    compressor = PruningEncoderCompressor(model=tiny_model, threshold=0.0, max_tokens=12)
    documents = compressor.compress_documents(
        [Document(page_content=c) for c in CONTEXTS], QUESTION
    )
    expected = tiny_model.process(QUESTION, CONTEXTS, threshold=0.0, max_tokens=12, reorder=True)
    expected = [r for r in expected if r["pruned_context"]]
    assert [d.page_content for d in documents] == [r["pruned_context"] for r in expected]
    assert [d.metadata["kept_tokens"] for d in documents] == [r["kept_tokens"] for r in expected]
    assert 0 < sum(d.metadata["kept_tokens"] for d in documents) <= 12
    with pytest.raises(ValueError, match="max_tokens"):
        PruningEncoderCompressor(model=tiny_model, max_tokens=-1)
