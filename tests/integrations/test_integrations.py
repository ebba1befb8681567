"""LangChain, LlamaIndex and Haystack components, against the real libraries and process()."""

from __future__ import annotations

import copy
import importlib
import itertools
import os
import sys
from pathlib import Path
from typing import Any

# Haystack reads this once, on import: without it, running a pipeline sends telemetry.
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"

import pytest
import torch
from haystack import Document as HaystackDocument
from haystack import Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.core.errors import SerializationError
from haystack.document_stores.in_memory import InMemoryDocumentStore
from langchain_core.documents import Document as LangChainDocument
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from pydantic import ValidationError

from pruning_encoder import PruningEncoder
from pruning_encoder.bundled import DEFAULT_MODEL
from pruning_encoder.integrations.haystack import PruningEncoderRanker
from pruning_encoder.integrations.langchain import PruningEncoderCompressor
from pruning_encoder.integrations.llama_index import PruningEncoderPostprocessor

QUESTION = "What is the capital of France?"
# Chosen so that, with the sharpened tiny model, the ranking differs from the input order, some
# contexts are pruned in part, and some (not only the empty one) lose every sentence.
CONTEXTS = [
    "The city of Paris. Dogs. A cat is in France.",
    "The dog was in the city. A cat is a cat.",
    "Cats and dogs. What is it?",
    "",
    "Paris is the capital of France. Cats purr. It is a city.",
    "France is a city of Paris. The cat was in it.",
    "A dog. The cat. It was.",
]
THRESHOLD = 0.43
BUDGET = 12  # tokens: a budget that some documents get nothing of
PRUNING_ONLY_THRESHOLD = 0.13


@pytest.fixture
def model(tiny_model: PruningEncoder) -> PruningEncoder:
    with torch.no_grad():  # random heads barely vary their outputs: sharpen them
        tiny_model.model.backbone.classifier.weight.mul_(300)
        tiny_model.model.pruning_head.classifier.weight.mul_(30)
    return tiny_model


@pytest.fixture
def pruning_only(tiny_pruning_only: PruningEncoder) -> PruningEncoder:
    with torch.no_grad():
        tiny_pruning_only.model.pruning_head.classifier.weight.mul_(30)
    return tiny_pruning_only


@pytest.fixture
def saved_model(model: PruningEncoder, tmp_path: Path) -> str:
    model.save_pretrained(tmp_path / "model")
    return str(tmp_path / "model")


def ranked(model: PruningEncoder, threshold: float = THRESHOLD) -> list[tuple[int, dict[str, Any]]]:
    """What every integration should return: (input position, process() result), best first,
    without the contexts pruned to nothing."""
    results = model.process(QUESTION, CONTEXTS, threshold=threshold)
    kept = [(i, result) for i, result in enumerate(results) if result["pruned_context"]]
    if model.config.has_ranking_head:
        kept.sort(key=lambda item: -item[1]["reranking_score"])
    return kept


def test_the_data_exercises_ranking_and_pruning(model: PruningEncoder) -> None:
    expected = ranked(model)
    positions = [i for i, _ in expected]
    assert positions != sorted(positions)
    assert 2 < len(expected) < len(CONTEXTS) - 1
    assert any(0 < result["compression_rate"] < 100 for _, result in expected)
    scores = [result["reranking_score"] for _, result in expected]
    assert all(a - b > 1e-5 for a, b in itertools.pairwise(scores))


# LangChain


def langchain_documents() -> list[LangChainDocument]:
    return [
        LangChainDocument(page_content=text, metadata={"source": f"doc{i}"}, id=f"id{i}")
        for i, text in enumerate(CONTEXTS)
    ]


def test_langchain_compressor_ranks_and_prunes_like_process(model: PruningEncoder) -> None:
    documents = langchain_documents()
    before = copy.deepcopy(documents)
    compressor = PruningEncoderCompressor(model=model, threshold=THRESHOLD)

    compressed = compressor.compress_documents(documents, QUESTION)

    expected = ranked(model)
    assert [d.page_content for d in compressed] == [r["pruned_context"] for _, r in expected]
    assert [d.id for d in compressed] == [f"id{i}" for i, _ in expected]
    for document, (i, result) in zip(compressed, expected, strict=True):
        assert document.metadata["source"] == f"doc{i}"
        assert document.metadata["relevance_score"] == pytest.approx(
            result["reranking_score"], abs=1e-5
        )
        assert document.metadata["compression_rate"] == pytest.approx(result["compression_rate"])
    assert documents == before


def test_langchain_compressor_honours_top_n(model: PruningEncoder) -> None:
    compressor = PruningEncoderCompressor(model=model, top_n=2, threshold=THRESHOLD)
    compressed = compressor.compress_documents(langchain_documents(), QUESTION)
    assert [d.id for d in compressed] == [f"id{i}" for i, _ in ranked(model)[:2]]
    assert compressor.compress_documents([], QUESTION) == []


def test_langchain_compressor_with_a_pruning_only_model(pruning_only: PruningEncoder) -> None:
    compressor = PruningEncoderCompressor(model=pruning_only, threshold=PRUNING_ONLY_THRESHOLD)
    compressed = compressor.compress_documents(langchain_documents(), QUESTION)
    expected = ranked(pruning_only, PRUNING_ONLY_THRESHOLD)
    assert 0 < len(expected) < len(CONTEXTS) - 1
    assert [d.id for d in compressed] == [f"id{i}" for i, _ in expected]
    assert [d.page_content for d in compressed] == [r["pruned_context"] for _, r in expected]
    assert all("relevance_score" not in d.metadata for d in compressed)
    with pytest.raises(ValueError, match="pruning_only"):
        PruningEncoderCompressor(model=pruning_only, top_n=1).compress_documents(
            langchain_documents(), QUESTION
        )


def test_langchain_compressor_loads_a_saved_model(model: PruningEncoder, saved_model: str) -> None:
    compressor = PruningEncoderCompressor(model=saved_model, threshold=THRESHOLD)
    compressed = compressor.compress_documents(langchain_documents(), QUESTION)
    assert [d.page_content for d in compressed] == [r["pruned_context"] for _, r in ranked(model)]


@pytest.mark.parametrize(
    "settings", [{"top_n": 0}, {"threshold": 1.5}, {"batch_size": 0}, {"unknown": 1}]
)
def test_langchain_compressor_rejects_bad_settings(
    model: PruningEncoder, settings: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        PruningEncoderCompressor(model=model, **settings)


# LlamaIndex


def llama_nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=text, id_=f"id{i}", metadata={"source": f"doc{i}"}),
            score=float(i),
        )
        for i, text in enumerate(CONTEXTS)
    ]


def test_llama_index_postprocessor_ranks_and_prunes_like_process(model: PruningEncoder) -> None:
    nodes = llama_nodes()
    before = [node.model_dump() for node in nodes]
    postprocessor = PruningEncoderPostprocessor(model=model, threshold=THRESHOLD)

    processed = postprocessor.postprocess_nodes(nodes, QueryBundle(QUESTION))

    expected = ranked(model)
    assert [n.node.get_content() for n in processed] == [r["pruned_context"] for _, r in expected]
    assert [n.node.node_id for n in processed] == [f"id{i}" for i, _ in expected]
    for node, (i, result) in zip(processed, expected, strict=True):
        assert node.score == pytest.approx(result["reranking_score"], abs=1e-5)
        assert node.node.metadata["source"] == f"doc{i}"
        assert node.node.metadata["compression_rate"] == pytest.approx(result["compression_rate"])
        assert "compression_rate" not in node.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "compression_rate" not in node.node.get_content(metadata_mode=MetadataMode.EMBED)
        assert "source" in node.node.get_content(metadata_mode=MetadataMode.LLM)
    assert [node.model_dump() for node in nodes] == before


def test_llama_index_postprocessor_honours_top_n_and_query_str(model: PruningEncoder) -> None:
    postprocessor = PruningEncoderPostprocessor(model=model, top_n=2, threshold=THRESHOLD)
    processed = postprocessor.postprocess_nodes(llama_nodes(), query_str=QUESTION)
    assert [n.node.node_id for n in processed] == [f"id{i}" for i, _ in ranked(model)[:2]]
    assert postprocessor.postprocess_nodes([], query_str=QUESTION) == []


def test_llama_index_postprocessor_needs_a_query(model: PruningEncoder) -> None:
    with pytest.raises(ValueError, match="needs the query"):
        PruningEncoderPostprocessor(model=model).postprocess_nodes(llama_nodes())


def test_llama_index_postprocessor_with_a_pruning_only_model(pruning_only: PruningEncoder) -> None:
    postprocessor = PruningEncoderPostprocessor(
        model=pruning_only, threshold=PRUNING_ONLY_THRESHOLD
    )
    processed = postprocessor.postprocess_nodes(llama_nodes(), query_str=QUESTION)
    expected = ranked(pruning_only, PRUNING_ONLY_THRESHOLD)
    assert [n.node.get_content() for n in processed] == [r["pruned_context"] for _, r in expected]
    assert [n.score for n in processed] == [float(i) for i, _ in expected]
    with pytest.raises(ValueError, match="pruning_only"):
        PruningEncoderPostprocessor(model=pruning_only, top_n=1).postprocess_nodes(
            llama_nodes(), query_str=QUESTION
        )


def test_llama_index_postprocessor_loads_and_serializes_a_saved_model(
    model: PruningEncoder, saved_model: str
) -> None:
    postprocessor = PruningEncoderPostprocessor(model=saved_model, threshold=THRESHOLD)
    restored = PruningEncoderPostprocessor.from_dict(postprocessor.to_dict())
    assert restored.model == saved_model
    processed = restored.postprocess_nodes(llama_nodes(), query_str=QUESTION)
    assert [n.node.get_content() for n in processed] == [
        r["pruned_context"] for _, r in ranked(model)
    ]


# Haystack


def haystack_documents() -> list[HaystackDocument]:
    return [
        HaystackDocument(id=f"id{i}", content=text, meta={"source": f"doc{i}"}, score=float(i))
        for i, text in enumerate(CONTEXTS)
    ]


def test_haystack_ranker_ranks_and_prunes_like_process(model: PruningEncoder) -> None:
    documents = haystack_documents()
    before = copy.deepcopy(documents)
    ranker = PruningEncoderRanker(model=model, threshold=THRESHOLD)

    output = ranker.run(query=QUESTION, documents=documents)["documents"]

    expected = ranked(model)
    assert [d.content for d in output] == [r["pruned_context"] for _, r in expected]
    assert [d.id for d in output] == [f"id{i}" for i, _ in expected]
    for document, (i, result) in zip(output, expected, strict=True):
        assert document.score == pytest.approx(result["reranking_score"], abs=1e-5)
        assert document.meta["source"] == f"doc{i}"
        assert document.meta["compression_rate"] == pytest.approx(result["compression_rate"])
    assert documents == before


def test_haystack_ranker_top_k_and_threshold_at_run_time(model: PruningEncoder) -> None:
    ranker = PruningEncoderRanker(model=model, top_k=1, threshold=0.0)
    output = ranker.run(query=QUESTION, documents=haystack_documents(), threshold=THRESHOLD)
    assert [d.id for d in output["documents"]] == [f"id{i}" for i, _ in ranked(model)[:1]]
    output = ranker.run(query=QUESTION, documents=haystack_documents(), top_k=2)
    assert [d.content for d in output["documents"]] == [
        r["pruned_context"] for _, r in ranked(model, 0.0)[:2]
    ]
    assert ranker.run(query=QUESTION, documents=[]) == {"documents": []}


def test_haystack_ranker_with_a_pruning_only_model(pruning_only: PruningEncoder) -> None:
    ranker = PruningEncoderRanker(model=pruning_only, threshold=PRUNING_ONLY_THRESHOLD)
    output = ranker.run(query=QUESTION, documents=haystack_documents())["documents"]
    expected = ranked(pruning_only, PRUNING_ONLY_THRESHOLD)
    assert [d.content for d in output] == [r["pruned_context"] for _, r in expected]
    assert [d.score for d in output] == [float(i) for i, _ in expected]
    with pytest.raises(ValueError, match="pruning_only"):
        ranker.run(query=QUESTION, documents=haystack_documents(), top_k=1)


def test_haystack_ranker_rejects_bad_input(model: PruningEncoder) -> None:
    with pytest.raises(ValueError, match="top_k"):
        PruningEncoderRanker(model=model, top_k=0)
    with pytest.raises(TypeError, match="model"):
        PruningEncoderRanker(model=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no content"):
        PruningEncoderRanker(model=model).run(query=QUESTION, documents=[HaystackDocument()])
    with pytest.raises(SerializationError, match="name or path"):
        PruningEncoderRanker(model=model).to_dict()


def test_haystack_ranker_loads_at_warm_up(tmp_path: Path) -> None:
    ranker = PruningEncoderRanker(str(tmp_path / "missing"))
    assert PruningEncoderRanker().model == DEFAULT_MODEL
    with pytest.raises((OSError, ValueError)):
        ranker.warm_up()


def test_haystack_pipeline_serializes_and_runs(model: PruningEncoder, saved_model: str) -> None:
    store = InMemoryDocumentStore()
    store.write_documents([HaystackDocument(content=text) for text in CONTEXTS if text])
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(store, top_k=len(CONTEXTS)))
    pipeline.add_component(
        "ranker", PruningEncoderRanker(saved_model, top_k=2, threshold=THRESHOLD)
    )
    pipeline.connect("retriever.documents", "ranker.documents")
    restored = Pipeline.loads(
        pipeline.dumps(), allowed_modules=["pruning_encoder.integrations.haystack"]
    )

    output = restored.run({"retriever": {"query": QUESTION}, "ranker": {"query": QUESTION}})

    contents = [d.content for d in output["ranker"]["documents"]]
    assert contents == [r["pruned_context"] for _, r in ranked(model)[:2]]


# Optional dependencies


# Every integration


def contents(integration: str, model: PruningEncoder, **settings: Any) -> list[str]:
    """The texts that ``integration``, made with ``settings``, returns for CONTEXTS."""
    if integration == "langchain":
        compressor = PruningEncoderCompressor(model=model, **settings)
        return [
            d.page_content for d in compressor.compress_documents(langchain_documents(), QUESTION)
        ]
    if integration == "llama_index":
        postprocessor = PruningEncoderPostprocessor(model=model, **settings)
        nodes = postprocessor.postprocess_nodes(llama_nodes(), query_str=QUESTION)
        return [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
    ranker = PruningEncoderRanker(model=model, **settings)
    return [
        d.content or ""
        for d in ranker.run(query=QUESTION, documents=haystack_documents())["documents"]
    ]


INTEGRATIONS = ["langchain", "llama_index", "haystack"]


@pytest.mark.parametrize("integration", INTEGRATIONS)
@pytest.mark.parametrize(
    "settings",
    [{"threshold": 1.0}, {"threshold": 0.0, "max_tokens": 0}, {"max_tokens": 0}],
    ids=["threshold-1", "threshold-0-budget-0", "budget-0"],
)
def test_a_document_pruned_to_nothing_is_dropped_at_any_setting(
    model: PruningEncoder,
    pruning_only: PruningEncoder,
    integration: str,
    settings: dict[str, Any],
) -> None:
    # Every sentence passes threshold 0 (each document would come back whole); threshold 1 and a
    # budget of 0 tokens keep none, so no document may come back, not even with its full text.
    assert len(contents(integration, model, threshold=0.0)) == len([c for c in CONTEXTS if c])
    assert contents(integration, model, **settings) == []
    assert contents(integration, pruning_only, **settings) == []


@pytest.mark.parametrize("integration", INTEGRATIONS)
def test_a_document_that_the_token_budget_empties_is_dropped(
    model: PruningEncoder, integration: str
) -> None:
    results = model.process(QUESTION, CONTEXTS, threshold=0.0, max_tokens=BUDGET, reorder=True)
    expected = [r["pruned_context"] for r in results if r["kept_spans"]]
    assert 0 < len(expected) < len([c for c in CONTEXTS if c])  # the budget empties some
    assert contents(integration, model, threshold=0.0, max_tokens=BUDGET) == expected


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [
        ("langchain", "langchain_core", "langchain"),
        ("llama_index", "llama_index", "llamaindex"),
        ("haystack", "haystack", "haystack"),
    ],
)
def test_a_missing_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, framework: str, extra: str
) -> None:
    for name in list(sys.modules):
        if name == framework or name.startswith(f"{framework}."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, framework, None)
    monkeypatch.delitem(sys.modules, f"pruning_encoder.integrations.{module}")
    with pytest.raises(ImportError, match=rf"pip install 'pruning-encoder\[{extra}\]'"):
        importlib.import_module(f"pruning_encoder.integrations.{module}")
