"""The baselines every evaluation scores beside the model, on the same records.

- ``bm25`` (ranking only): one BM25 index (bm25s, English stopwords) over all unique texts of
  all records, so that IDF is meaningful; each query is scored against its own texts.
- ``bi-encoder``: a SentenceTransformer (e.g. the model's untrained backbone) ranks by
  cosine(query, text) and prunes by cosine(query, sentence), keeping a sentence as
  ``process()`` keeps one (its score above the threshold; :mod:`.thresholds`).
- ``keep-all`` and ``keep-first-sentence`` (pruning only).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np

from ..data.records import Record
from .metrics import Kept, Scores, Units

__all__ = [
    "bi_encoder_similarities",
    "bm25_scores",
    "keep_all",
    "keep_first_sentence",
    "load_bi_encoder",
]

_INSTALL = "pip install 'pruning-encoder[train]'"


def _import_error(package: str) -> ImportError:
    return ImportError(f"The {package} baseline needs the {package} package: {_INSTALL}.")


def bm25_scores(records: Sequence[Record]) -> Scores:
    """BM25 over one index of all unique texts; each query scored against its own texts.

    Raises:
        ImportError: bm25s is missing (the message has the install line).
    """
    try:
        import bm25s
    except ImportError as error:
        raise _import_error("bm25s") from error
    corpus = list(dict.fromkeys(text for record in records for text in record.texts))
    position = {text: i for i, text in enumerate(corpus)}
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False
    )
    queries = bm25s.tokenize(
        [record.query for record in records],
        stopwords="en",
        return_ids=False,
        show_progress=False,
    )
    scores = []
    for record, tokens in zip(records, queries, strict=True):
        if tokens:
            everything = retriever.get_scores(list(tokens))
            scores.append([float(everything[position[text]]) for text in record.texts])
        else:
            scores.append([0.0] * len(record.texts))
    return scores


def load_bi_encoder(bi_encoder: Any) -> Any:
    """A SentenceTransformer from a path (``str`` or path-like), or ``bi_encoder`` itself when it
    is already a model.

    Raises:
        ImportError: sentence-transformers is missing (the message has the install line).
    """
    if not isinstance(bi_encoder, str | PathLike):  # already a model (str has .encode too)
        return bi_encoder
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise _import_error("sentence-transformers") from error
    return SentenceTransformer(str(bi_encoder))


def bi_encoder_similarities(
    records: Sequence[Record],
    bi_encoder: Any,
    units: Units,
    *,
    batch_size: int,
    show_progress_bar: bool | None,
) -> tuple[Scores, list[list[np.ndarray]]]:
    """Cosine(query, text) per text and cosine(query, sentence) per sentence ``units`` of each
    text (``[sentences]``), from one encoding of every distinct string."""
    encoder = load_bi_encoder(bi_encoder)
    strings: dict[str, int] = {}
    for record, record_units in zip(records, units, strict=True):
        strings.setdefault(record.query, len(strings))
        for text, spans in zip(record.texts, record_units, strict=True):
            strings.setdefault(text, len(strings))
            for s, e in spans:
                strings.setdefault(text[s:e], len(strings))
    embeddings = np.asarray(
        encoder.encode(
            list(strings),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=bool(show_progress_bar),
        ),
        dtype=np.float64,
    )
    text_scores: Scores = []
    sentence_scores: list[list[np.ndarray]] = []
    for record, record_units in zip(records, units, strict=True):
        query = embeddings[strings[record.query]]
        text_scores.append([float(embeddings[strings[t]] @ query) for t in record.texts])
        sentence_scores.append(
            [
                np.array([embeddings[strings[t[s:e]]] @ query for s, e in spans], dtype=np.float64)
                for t, spans in zip(record.texts, record_units, strict=True)
            ]
        )
    return text_scores, sentence_scores


def keep_all(records: Sequence[Record]) -> Kept:
    """Every text whole."""
    return [[[(0, len(text))] for text in record.texts] for record in records]


def keep_first_sentence(units: Units) -> Kept:
    """The first sentence of every text."""
    return [[spans[:1] for spans in record_units] for record_units in units]
