"""Batches for training: (query, text) pairs → windows of whole sentences with token labels.

Texts longer than ``max_length`` are cut into windows exactly as ``process()`` cuts them at
inference, so the model trains on the inputs it will see. Token labels: 1 for context tokens inside
a relevant span, 0 for other context tokens, -100 for the query, special tokens and padding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..configuration_pruning_encoder import CONTEXT_TOKENIZATIONS
from ..data.records import Record
from ..sentence_splitter import Span, split_sentences
from ..windows import Template, build_windows, collate

Feature = dict[str, Any]


def pair_features(records: Iterable[Record]) -> list[Feature]:
    """One training feature per (query, text) pair of the records, in order."""
    features = []
    for record in records:
        for i, text in enumerate(record.texts):
            features.append(
                {
                    "query": record.query,
                    "text": text,
                    "relevant_spans": record.relevant_spans[i],
                    "label": None if record.labels is None else record.labels[i],
                    "score": None if record.scores is None else record.scores[i],
                }
            )
    return features


@dataclass
class PruningDataCollator:
    """Turn pair features (see :func:`pair_features`) into model inputs and targets.

    A feature is a dict with ``query``, ``text``, ``relevant_spans``, ``label`` and ``score``
    (None where unknown), and optionally ``title`` (shown before each window, as
    ``process(title=...)`` does). Its windows are :func:`~pruning_encoder.windows.build_windows`'s,
    the ones ``process()`` runs the model on; ``max_length``, ``language`` and
    ``context_tokenization`` should be the model's, as the trainer sets them.

    Returns ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer uses
    them), ``pruning_labels`` ``[windows, tokens]``, and ``labels`` / ``scores`` ``[windows]``
    (NaN where a pair has none). A batch may hold more windows than pairs. A window of a relevant
    text that holds none of its relevant tokens gets a NaN ranking target: it is neither a
    positive (its answer is elsewhere) nor a clean negative.

    Raises:
        ValueError: A slow tokenizer, an unknown ``context_tokenization``, or (when called) a
            query too long for ``max_length``.
    """

    tokenizer: PreTrainedTokenizerBase
    max_length: int = 512
    language: str = "auto"
    context_tokenization: str = "whole"
    _template: Template = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.tokenizer.is_fast:
            raise ValueError("PruningDataCollator needs a fast tokenizer (offset mapping).")
        if self.context_tokenization not in CONTEXT_TOKENIZATIONS:
            raise ValueError(
                f"Unknown context_tokenization {self.context_tokenization!r}: expected one of "
                f"{CONTEXT_TOKENIZATIONS}."
            )
        self._template = Template.of(self.tokenizer)

    def __call__(self, features: Sequence[Feature]) -> dict[str, torch.Tensor]:
        texts = [f["text"] for f in features]
        windows = build_windows(
            self.tokenizer,
            self._template,
            [f["query"] for f in features],
            texts,
            [split_sentences(text, self.language) for text in texts],
            [f.get("title") for f in features],
            max_length=self.max_length,
            per_sentence=self.context_tokenization == "per_sentence",
        )
        token_labels: list[np.ndarray] = []
        targets: dict[str, list[float]] = {"labels": [], "scores": []}
        for window in windows:
            feature = features[window.document]
            relevant = _inside(window.position_of_token, feature["relevant_spans"])
            token_labels.append(relevant)
            # Relevant text, but this window misses its relevant part: no ranking target.
            misses = bool(feature["relevant_spans"]) and not relevant.any()
            for key, name in (("labels", "label"), ("scores", "score")):
                value = feature.get(name)
                known = value is not None and not (misses and value > 0)
                targets[key].append(float(value) if value is not None and known else math.nan)
        inputs, context_start = collate(
            windows, self._template, self.tokenizer.pad_token_id or 0, torch.device("cpu")
        )
        pruning_labels = torch.full_like(inputs["input_ids"], -100)
        for row, (start, labels) in enumerate(zip(context_start, token_labels, strict=True)):
            pruning_labels[row, start : start + len(labels)] = torch.from_numpy(labels)
        batch = {**inputs, "pruning_labels": pruning_labels}
        for key, name in (("labels", "label"), ("scores", "score")):
            if any(f.get(name) is not None for f in features):
                batch[key] = torch.tensor(targets[key], dtype=torch.float32)
        return batch


def _inside(positions: np.ndarray, spans: Sequence[Span]) -> np.ndarray:
    """1 for each token whose position (:func:`token_positions`) lies inside one of the
    (sorted) spans, else 0."""
    if not spans:
        return np.zeros(len(positions), dtype=np.int64)
    span_starts = np.asarray([s for s, _ in spans], dtype=np.int64)
    span_ends = np.asarray([e for _, e in spans], dtype=np.int64)
    candidate = np.searchsorted(span_starts, positions, side="right") - 1
    valid = candidate >= 0
    inside = valid & (positions < span_ends[np.maximum(candidate, 0)])
    return inside.astype(np.int64)
