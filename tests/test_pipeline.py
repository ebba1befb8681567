"""The ``context-pruning`` pipeline: remote code, the registered task, batching, and the ranker."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from pruning_encoder import ContextPruningPipeline, PruningEncoder
from pruning_encoder.saving import CUSTOM_PIPELINES, PIPELINE_TASK

QUESTION = "what is paris?"
CONTEXT = "Paris is the capital of France. Cats purr. The dog is in the city."
OTHER = "The cat is in paris. It was a dog! France is a city."


@pytest.fixture
def sharpened(tiny_model: PruningEncoder) -> PruningEncoder:
    # Random heads barely vary their outputs: scale them up so that sentences differ.
    with torch.no_grad():
        tiny_model.model.backbone.classifier.weight.mul_(300)
        tiny_model.model.pruning_head.classifier.weight.mul_(30)
    return tiny_model


@pytest.fixture
def saved(sharpened: PruningEncoder, tmp_path: Path) -> Path:
    sharpened.save_pretrained(tmp_path / "m")
    return tmp_path / "m"


@pytest.fixture
def threshold(sharpened: PruningEncoder) -> float:
    """Midway between CONTEXT's lowest and highest sentence probabilities: it prunes some."""
    result = sharpened.process(QUESTION, CONTEXT, return_sentence_probabilities=True)
    probabilities = result["sentence_probabilities"]
    return (min(probabilities) + max(probabilities)) / 2


def as_json(value: Any) -> Any:
    """``value`` as it comes back through JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def assert_same(got: object, expected: object) -> None:
    if isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_same(g, e)
        return
    assert isinstance(got, dict) and isinstance(expected, dict)
    assert got["reranking_score"] == pytest.approx(expected["reranking_score"], abs=1e-5)
    assert {k: v for k, v in got.items() if k != "reranking_score"} == {
        k: v for k, v in expected.items() if k != "reranking_score"
    }


def test_saved_config_declares_the_pipeline(saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    assert config["custom_pipelines"] == CUSTOM_PIPELINES
    assert (saved / "pipeline_context_pruning.py").is_file()


def test_remote_code_pipeline_runs_without_the_package(
    sharpened: PruningEncoder,
    saved: Path,
    threshold: float,
    run_without_the_package: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    script = textwrap.dedent(
        f"""
        import json
        from transformers import pipeline
        pruner = pipeline(
            "context-pruning", model={str(saved)!r}, trust_remote_code=True, device="cpu"
        )
        single = pruner(question={QUESTION!r}, context={CONTEXT!r}, threshold={threshold!r})
        batch = pruner(
            [{{"question": {QUESTION!r}, "context": [{CONTEXT!r}, {OTHER!r}]}},
             {{"question": "who?", "context": {OTHER!r}}}],
            threshold={threshold!r},
            batch_size=2,
        )
        print(json.dumps({{"module": type(pruner).__module__, "single": single, "batch": batch}}))
        """
    )
    run = run_without_the_package(script)
    remote = json.loads(run.stdout.strip().splitlines()[-1])
    assert remote["module"].startswith("transformers_modules.")
    expected = sharpened.process(QUESTION, CONTEXT, threshold=threshold)
    assert 0 < expected["compression_rate"] < 100
    assert_same(remote["single"], as_json(expected))
    batch = sharpened.process([QUESTION, "who?"], [[CONTEXT, OTHER], [OTHER]], threshold=threshold)
    assert_same(remote["batch"], as_json([batch[0], batch[1][0]]))


def test_registered_task_runs_an_in_memory_model(
    sharpened: PruningEncoder, threshold: float
) -> None:
    assert PIPELINE_REGISTRY.check_task(PIPELINE_TASK)[1]["impl"] is ContextPruningPipeline
    pruner = pipeline(PIPELINE_TASK, model=sharpened.model, device="cpu", threshold=threshold)
    assert type(pruner) is ContextPruningPipeline
    expected = sharpened.process(QUESTION, CONTEXT, threshold=threshold)
    assert_same(pruner({"question": QUESTION, "context": CONTEXT}), expected)
    assert_same(pruner(question=QUESTION, context=CONTEXT), expected)
    everything = pruner({"question": QUESTION, "context": CONTEXT}, threshold=0.0)
    assert everything["pruned_context"] == CONTEXT
    aligned = pruner(question=[QUESTION, "who?"], context=[CONTEXT, OTHER])
    assert_same(
        aligned, sharpened.process([QUESTION, "who?"], [CONTEXT, OTHER], threshold=threshold)
    )


@pytest.mark.parametrize("batch_size", [1, 2])
def test_saved_directory_in_process_with_lists(
    sharpened: PruningEncoder, saved: Path, threshold: float, batch_size: int
) -> None:
    pruner = pipeline(PIPELINE_TASK, model=str(saved), trust_remote_code=True, device="cpu")
    inputs = [
        {"question": QUESTION, "context": CONTEXT},
        {"question": "who?", "context": [OTHER, CONTEXT]},
        {"question": QUESTION, "context": OTHER},
    ]
    got = pruner(inputs, threshold=threshold, batch_size=batch_size)
    expected = [
        sharpened.process(QUESTION, CONTEXT, threshold=threshold),
        sharpened.process("who?", [OTHER, CONTEXT], threshold=threshold),
        sharpened.process(QUESTION, OTHER, threshold=threshold),
    ]
    assert_same(got, expected)
    ranked = pruner(inputs[1], threshold=threshold, reorder=True, top_k=1)
    assert len(ranked) == 1 and "index" in ranked[0]
    # pipeline() rewrote the loaded custom_pipelines in place; saving again must still work.
    pruner.model.save_pretrained(saved.parent / "again")
    config = json.loads((saved.parent / "again" / "config.json").read_text())
    assert config["custom_pipelines"] == CUSTOM_PIPELINES


def test_bad_inputs_and_options_are_clear_errors(sharpened: PruningEncoder) -> None:
    pruner = pipeline(PIPELINE_TASK, model=sharpened.model, device="cpu")
    with pytest.raises(TypeError, match="Unknown option"):
        pruner(question=QUESTION, context=CONTEXT, treshold=0.5)
    with pytest.raises(TypeError, match="must be a dict"):
        pruner(QUESTION)
    with pytest.raises(ValueError, match="list of contexts of that length"):
        pruner(question=[QUESTION, "who?"], context=[CONTEXT])
    with pytest.raises(ValueError, match="title must be 'first_sentence' or one string"):
        pruner(question=QUESTION, context=CONTEXT, title=["a"])


def test_ranking_model_still_works_as_a_text_classifier(
    sharpened: PruningEncoder, saved: Path
) -> None:
    classifier = pipeline("text-classification", model=str(saved / "ranking_model"), device="cpu")
    (result,) = classifier([{"text": QUESTION, "text_pair": CONTEXT}])
    expected = sharpened.process(QUESTION, CONTEXT)["reranking_score"]
    assert result["score"] == pytest.approx(expected, abs=1e-5)
