"""Stand-ins for a model and a bi-encoder, and hand-made records, shared by tests/evaluation/."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from pruning_encoder.context_pruning import kept_spans
from pruning_encoder.data.records import Record
from pruning_encoder.sentence_splitter import split_sentences


def record(
    query: str,
    texts: list[str],
    relevant: list[list[str]],
    answers: list[str] | None = None,
) -> Record:
    """A record whose relevant spans are the given sentences (found by substring)."""
    spans = [
        [(text.index(s), text.index(s) + len(s)) for s in sentences]
        for text, sentences in zip(texts, relevant, strict=True)
    ]
    labels = [1.0 if s else 0.0 for s in spans]
    return Record(query, texts, spans, labels=labels, answers=answers or [])


HAMLET = record(
    "Who wrote Hamlet?",
    [
        "Paris is in France.",
        "Hamlet is a tragedy. It was written by Shakespeare.",
        "Cats purr when they are happy.",
    ],
    [[], ["It was written by Shakespeare."], []],
    answers=["shakespeare"],
)
CAPITAL = record(
    "What is the capital of France?",
    [
        "Dogs bark loudly. Birds sing.",
        "The city of Paris is lovely. Paris is the capital of France.",
    ],
    [[], ["Paris is the capital of France."]],
    answers=["Paris"],
)
RECORDS = [HAMLET, CAPITAL]


class ScoredModel:
    """``process()`` with sentence probabilities from ``score(question, sentence)``.

    It ranks a text by its best sentence and keeps the sentences above the threshold, with the
    spans ``process()`` returns; ``calls`` counts the texts of each call.
    """

    def __init__(self, score: Callable[[str, str], float], *, ranking: bool = True) -> None:
        self.config = SimpleNamespace(default_threshold=0.5, has_ranking_head=ranking)
        self.score = score
        self.calls: list[int] = []

    def process(self, question: Any, context: Any, **options: Any) -> list[dict[str, Any]]:
        assert isinstance(question, list) and isinstance(context, list)
        self.calls.append(len(context))
        threshold = options["threshold"]
        threshold = self.config.default_threshold if threshold is None else threshold
        results = []
        for q, text in zip(question, context, strict=True):
            spans = split_sentences(text)
            probs = [self.score(q, text[s:e]) for s, e in spans]
            kept = kept_spans(text, spans, np.array(probs) > threshold)
            result = {
                "pruned_context": "".join(text[s:e] for s, e in kept),
                "reranking_score": max(probs, default=0.0)
                if self.config.has_ranking_head
                else None,
                "compression_rate": 0.0,
                "kept_spans": kept,
            }
            if options.get("return_sentence_probabilities"):
                result["sentence_spans"] = spans
                result["sentence_probabilities"] = probs
            results.append(result)
        return results


class StubModel(ScoredModel):
    """Sentence probabilities 0.7 for the relevant sentences of ``records``, 0.3 for the others;
    a text's reranking score is its best sentence's."""

    def __init__(self, records: list[Record], *, ranking: bool = True) -> None:
        relevant = {
            (rec.query, text[s:e])
            for rec in records
            for text, spans in zip(rec.texts, rec.relevant_spans, strict=True)
            for s, e in spans
        }
        super().__init__(
            lambda q, sentence: 0.7 if (q, sentence) in relevant else 0.3, ranking=ranking
        )


class BagOfWords:
    """A stub SentenceTransformer: hashed bag-of-words vectors, L2-normalised."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, strings: list[str], **options: Any) -> np.ndarray:
        assert options["normalize_embeddings"] and options["convert_to_numpy"]
        self.encoded.extend(strings)
        vectors = np.zeros((len(strings), 64))
        for row, string in enumerate(strings):
            for word in string.lower().replace(".", " ").replace("?", " ").split():
                vectors[row, zlib.crc32(word.encode()) % 64] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)


class FixedCosines:
    """A stub SentenceTransformer whose cosine(query, sentence) is ``cosines[sentence]`` (0 for
    other strings): each query is the first axis, each other string a unit vector
    ``(c, sqrt(1 - c²))`` on an axis of its own."""

    def __init__(self, cosines: dict[str, float], queries: set[str]) -> None:
        self.cosines = cosines
        self.queries = queries

    def encode(self, strings: list[str], **options: Any) -> np.ndarray:
        vectors = np.zeros((len(strings), len(strings) + 1))
        for row, string in enumerate(strings):
            if string in self.queries:
                vectors[row, 0] = 1.0
            else:
                cosine = self.cosines.get(string, 0.0)
                vectors[row, 0] = cosine
                vectors[row, row + 1] = np.sqrt(1.0 - cosine * cosine)
        return vectors
