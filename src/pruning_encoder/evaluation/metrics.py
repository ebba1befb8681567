"""Evaluate a PruningEncoder against simple baselines, on the same records in one call.

Every method is scored on the same :class:`~pruning_encoder.data.records.Record` list, and the
report is plain JSON (``{"methods": {name: {metric: value or None}}, "counts": ..., ...}``).

Ranking metrics (per query over its own texts, binary relevance :attr:`Record.relevance`,
averaged over the queries with at least one relevant text; a query without one is skipped):

- ``mrr@10``: 1 / rank of the first relevant text if it is in the top 10, else 0.
- ``ndcg@10``: DCG@10 / ideal DCG@10 with binary gains, ``DCG = sum rel_i / log2(i + 1)``
  over ranks ``i = 1..10``.
- Ties are broken pessimistically: texts with equal scores are ordered with the irrelevant ones
  first, then by original index, so a constant scorer earns no credit from the input order.

Pruning metrics. The units are the sentences ``split_sentences(text)`` of every text. A unit is
*relevant* when at least half of its characters lie inside the record's ``relevant_spans``,
and *kept* when at least half of its characters lie inside the method's kept spans. Counts are
micro-pooled over all texts of all records:

- ``sentence_precision`` = kept relevant / kept units (None when nothing is kept);
- ``sentence_recall`` = kept relevant / relevant units (None when no unit is relevant);
- ``sentence_f1`` and ``sentence_f2``: F-beta ``(1 + b²)·tp / ((1 + b²)·tp + b²·fn + fp)``
  with b = 1 and 2 (None when the denominator is 0);
- ``answer_kept``: over the relevant texts of records that have ``answers``, the fraction whose
  pruned text (the kept spans, concatenated) contains every answer, case-insensitively (None if
  there are no such texts). A relevant text without any answer in it counts as a miss, so
  keep-all's value is the ceiling for every method;
- ``removed_relevant_pct`` / ``removed_irrelevant_pct``: ``100 * (1 - kept characters /
  original characters)``, both summed over the relevant / irrelevant texts (None if none);
- ``removed_evidence_pct`` / ``removed_distractor_pct``: the same, over the characters inside /
  outside the ``relevant_spans`` of every text (a relevant text's other sentences count as
  distractors), as in the FanOutQA benchmark of :mod:`pruning_encoder.data.fanoutqa`.

Methods: ``model`` (ranking by ``reranking_score``, None for a pruning_only model; pruning by
``kept_spans`` at the threshold), ``bm25`` (ranking only; one BM25 index over all unique texts
of all records so that IDF is meaningful, each query scored against its own texts),
``bi-encoder`` (ranking by cosine(query, text); pruning keeps the sentences whose cosine with
the query is at least ``bi_encoder_threshold``), ``keep-all`` and ``keep-first-sentence``
(pruning only).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np

from ..data.records import Record, merge_spans
from ..sentence_splitter import Span, split_sentences

__all__ = [
    "METRICS",
    "choose_bi_encoder_threshold",
    "choose_threshold",
    "evaluate",
    "format_table",
    "mrr_at_k",
    "ndcg_at_k",
    "pruning_metrics",
    "ranking_metrics",
    "sentence_probabilities",
]

logger = logging.getLogger(__name__)

METRICS = (
    "mrr@10",
    "ndcg@10",
    "sentence_precision",
    "sentence_recall",
    "sentence_f1",
    "sentence_f2",
    "answer_kept",
    "removed_relevant_pct",
    "removed_irrelevant_pct",
    "removed_evidence_pct",
    "removed_distractor_pct",
)
RANKING_METRICS = METRICS[:2]
PRUNING_METRICS = METRICS[2:]
_LABELS = {
    "mrr@10": "MRR@10",
    "ndcg@10": "nDCG@10",
    "sentence_precision": "sent P",
    "sentence_recall": "sent R",
    "sentence_f1": "sent F1",
    "sentence_f2": "sent F2",
    "answer_kept": "answer kept",
    "removed_relevant_pct": "rm rel %",
    "removed_irrelevant_pct": "rm irrel %",
    "removed_evidence_pct": "rm evid %",
    "removed_distractor_pct": "rm distr %",
}
GRID = np.round(np.arange(1, 100) / 100, 2)
_INSTALL = "pip install 'pruning-encoder[train]'"

Scores = list[list[float]]  # per record, per text
Kept = list[list[list[Span]]]  # per record, per text, kept spans


# --------------------------------------------------------------------------- ranking metrics


def _ranked_relevance(scores: Sequence[float], relevance: Sequence[float]) -> list[float]:
    """Relevance in ranked order: by score, descending; ties irrelevant-first, then by index."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), relevance[i] > 0, i))
    return [1.0 if relevance[i] > 0 else 0.0 for i in order]


def mrr_at_k(scores: Sequence[float], relevance: Sequence[float], k: int = 10) -> float | None:
    """Reciprocal rank of the first relevant text within the top ``k``; None if none relevant."""
    ranked = _ranked_relevance(scores, relevance)
    if not any(ranked):
        return None
    for rank, rel in enumerate(ranked[:k], start=1):
        if rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(scores: Sequence[float], relevance: Sequence[float], k: int = 10) -> float | None:
    """Binary-gain nDCG@k; None if no text is relevant."""
    ranked = _ranked_relevance(scores, relevance)
    total = int(sum(ranked))
    if not total:
        return None
    dcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ranked[:k], start=1))
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(total, k) + 1))
    return dcg / ideal


def ranking_metrics(records: Sequence[Record], scores: Scores) -> dict[str, float | None]:
    """``mrr@10`` and ``ndcg@10`` averaged over the queries with at least one relevant text."""
    mrr, ndcg = [], []
    for record, record_scores in zip(records, scores, strict=True):
        value = mrr_at_k(record_scores, record.relevance)
        if value is None:
            continue
        mrr.append(value)
        ndcg.append(ndcg_at_k(record_scores, record.relevance) or 0.0)
    if not mrr:
        return {"mrr@10": None, "ndcg@10": None}
    return {"mrr@10": float(np.mean(mrr)), "ndcg@10": float(np.mean(ndcg))}


# --------------------------------------------------------------------------- pruning metrics


def _overlap(span: Span, spans: Sequence[Span]) -> int:
    start, end = span
    return sum(max(0, min(end, e) - max(start, s)) for s, e in spans)


def _mostly_inside(span: Span, spans: Sequence[Span]) -> bool:
    """Whether at least half of the characters of ``span`` lie inside ``spans``."""
    return 2 * _overlap(span, spans) >= span[1] - span[0]


def _f_beta(tp: float, fp: float, fn: float, beta: float) -> float | None:
    b2 = beta * beta
    denominator = (1 + b2) * tp + b2 * fn + fp
    return None if denominator == 0 else (1 + b2) * tp / denominator


def _units(records: Sequence[Record]) -> list[list[list[Span]]]:
    return [[split_sentences(text) for text in record.texts] for record in records]


def pruning_metrics(
    records: Sequence[Record], kept: Kept, units: list[list[list[Span]]] | None = None
) -> dict[str, float | None]:
    """Sentence P/R/F1/F2, ``answer_kept`` and removed-character percentages (see module doc)."""
    units = _units(records) if units is None else units
    tp = fp = fn = 0
    answers_found = answers_total = 0
    kept_chars = {True: 0, False: 0}
    total_chars = {True: 0, False: 0}
    evidence = {"kept": 0, "total": 0}
    distractor = {"kept": 0, "total": 0}
    for record, record_kept, record_units in zip(records, kept, units, strict=True):
        relevance = record.relevance
        for i, text in enumerate(record.texts):
            spans = merge_spans(record_kept[i])
            for unit in record_units[i]:
                relevant = _mostly_inside(unit, record.relevant_spans[i])
                keep = _mostly_inside(unit, spans)
                tp += relevant and keep
                fp += keep and not relevant
                fn += relevant and not keep
            is_relevant = relevance[i] > 0
            pruned = "".join(text[s:e] for s, e in spans)
            kept_chars[is_relevant] += len(pruned)
            total_chars[is_relevant] += len(text)
            inside = merge_spans(record.relevant_spans[i])
            inside_chars = sum(e - s for s, e in inside)
            kept_inside = sum(_overlap(span, inside) for span in spans)
            evidence["total"] += inside_chars
            evidence["kept"] += kept_inside
            distractor["total"] += len(text) - inside_chars
            distractor["kept"] += len(pruned) - kept_inside
            if is_relevant and record.answers:
                answers_total += 1
                lowered = pruned.lower()
                answers_found += all(a.lower() in lowered for a in record.answers)

    def removed(group: bool) -> float | None:
        if not total_chars[group]:
            return None
        return 100.0 * (1.0 - kept_chars[group] / total_chars[group])

    def removed_share(counts: dict[str, int]) -> float | None:
        return 100.0 * (1.0 - counts["kept"] / counts["total"]) if counts["total"] else None

    return {
        "sentence_precision": tp / (tp + fp) if tp + fp else None,
        "sentence_recall": tp / (tp + fn) if tp + fn else None,
        "sentence_f1": _f_beta(tp, fp, fn, 1.0),
        "sentence_f2": _f_beta(tp, fp, fn, 2.0),
        "answer_kept": answers_found / answers_total if answers_total else None,
        "removed_relevant_pct": removed(True),
        "removed_irrelevant_pct": removed(False),
        "removed_evidence_pct": removed_share(evidence),
        "removed_distractor_pct": removed_share(distractor),
    }


def _best_threshold(
    relevant: list[np.ndarray], kept_chars: list[np.ndarray], lengths: list[np.ndarray], beta: float
) -> float:
    """The grid threshold maximising micro F-beta; ``kept_chars[j]`` is ``[units, thresholds]``."""
    tp = np.zeros(len(GRID))
    fp = np.zeros(len(GRID))
    fn = np.zeros(len(GRID))
    for rel, chars, length in zip(relevant, kept_chars, lengths, strict=True):
        if not len(rel):
            continue
        keep = 2 * chars >= length[:, None]
        tp += (keep & rel[:, None]).sum(axis=0)
        fp += (keep & ~rel[:, None]).sum(axis=0)
        fn += (~keep & rel[:, None]).sum(axis=0)
    b2 = beta * beta
    denominator = (1 + b2) * tp + b2 * fn + fp
    f = np.divide((1 + b2) * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(GRID[int(np.argmax(f))])  # ties: the lowest threshold (keeps the most)


def _unit_arrays(record: Record, i: int, units: list[Span]) -> tuple[np.ndarray, np.ndarray]:
    relevant = np.array([_mostly_inside(u, record.relevant_spans[i]) for u in units], dtype=bool)
    lengths = np.array([e - s for s, e in units], dtype=np.int64)
    return relevant, lengths


# --------------------------------------------------------------------------- the model


def _pairs(records: Sequence[Record]) -> tuple[list[str], list[str]]:
    questions = [record.query for record in records for _ in record.texts]
    contexts = [text for record in records for text in record.texts]
    return questions, contexts


def _regroup(records: Sequence[Record], flat: Sequence[Any]) -> list[list[Any]]:
    grouped, offset = [], 0
    for record in records:
        grouped.append(list(flat[offset : offset + len(record.texts)]))
        offset += len(record.texts)
    return grouped


def _run_model(
    model: Any,
    records: Sequence[Record],
    *,
    threshold: float | None,
    batch_size: int,
    probabilities: bool,
    show_progress_bar: bool | None,
) -> list[list[dict[str, Any]]]:
    """One aligned ``process()`` call over every (query, text) pair, regrouped per record."""
    questions, contexts = _pairs(records)
    if not contexts:
        return [[] for _ in records]
    results = model.process(
        questions,
        contexts,
        threshold=threshold,
        batch_size=batch_size,
        return_sentence_probabilities=probabilities,
        show_progress_bar=show_progress_bar,
    )
    return _regroup(records, results)


def sentence_probabilities(
    model: Any,
    records: Sequence[Record],
    *,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> tuple[list[list[list[Span]]], list[list[np.ndarray]]]:
    """What every threshold search sweeps, from one ``process()`` pass over every (query, text)
    pair: per record and text, the sentence spans and their keep-probabilities (``[sentences]``).
    """
    results = _run_model(
        model,
        records,
        threshold=None,
        batch_size=batch_size,
        probabilities=True,
        show_progress_bar=show_progress_bar,
    )
    spans = [[[(s, e) for s, e in r["sentence_spans"]] for r in group] for group in results]
    probabilities = [
        [np.asarray(r["sentence_probabilities"], dtype=np.float64) for r in group]
        for group in results
    ]
    return spans, probabilities


def choose_threshold(
    model: Any,
    records: Sequence[Record],
    *,
    batch_size: int = 32,
    beta: float = 2.0,
    show_progress_bar: bool | None = None,
) -> float:
    """The model's keep threshold that maximises sentence F-beta (F2 by default) on ``records``.

    Use a validation split, never the test data: the threshold is fitted to these records.
    One ``process(..., return_sentence_probabilities=True)`` pass scores every sentence; the
    metrics of every threshold of the grid 0.01, 0.02, ..., 0.99 are then computed from those
    probabilities (a sentence is kept when its probability exceeds the threshold, as in
    ``process()``), with the units and rules of :func:`pruning_metrics`. Ties go to the lowest
    threshold.
    """
    all_spans, all_probabilities = sentence_probabilities(
        model, records, batch_size=batch_size, show_progress_bar=show_progress_bar
    )
    relevant, kept_chars, lengths = [], [], []
    for record, record_spans, record_probs, record_units in zip(
        records, all_spans, all_probabilities, _units(records), strict=True
    ):
        for i, (spans, probs, units) in enumerate(
            zip(record_spans, record_probs, record_units, strict=True)
        ):
            rel, length = _unit_arrays(record, i, units)
            overlap = np.array(
                [[_overlap(u, [s]) for s in spans] for u in units], dtype=np.float64
            ).reshape(len(units), len(spans))
            keep = probs[:, None] > GRID[None, :]  # [model sentences, thresholds]
            relevant.append(rel)
            kept_chars.append(overlap @ keep)
            lengths.append(length)
    return _best_threshold(relevant, kept_chars, lengths, beta)


# --------------------------------------------------------------------------- baselines


def _import_error(package: str) -> ImportError:
    return ImportError(f"The {package} baseline needs the {package} package: {_INSTALL}.")


def _bm25_scores(records: Sequence[Record]) -> Scores:
    """BM25 over one index of all unique texts; each query scored against its own texts."""
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


def _load_bi_encoder(bi_encoder: Any) -> Any:
    if not isinstance(bi_encoder, str | PathLike):  # already a model (str has .encode too)
        return bi_encoder
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise _import_error("sentence-transformers") from error
    return SentenceTransformer(str(bi_encoder))


def _bi_encoder_similarities(
    records: Sequence[Record],
    bi_encoder: Any,
    units: list[list[list[Span]]],
    *,
    batch_size: int,
    show_progress_bar: bool | None,
) -> tuple[Scores, list[list[np.ndarray]]]:
    """Cosine(query, text) per text and cosine(query, sentence) per sentence of each text."""
    encoder = _load_bi_encoder(bi_encoder)
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


def choose_bi_encoder_threshold(
    records: Sequence[Record],
    bi_encoder: Any,
    *,
    batch_size: int = 32,
    beta: float = 2.0,
    show_progress_bar: bool | None = None,
) -> float:
    """The bi-encoder cosine threshold maximising sentence F-beta (F2) on ``records``.

    Like :func:`choose_threshold` (grid 0.01..0.99, one encoding pass; a sentence is kept when
    its cosine with the query is at least the threshold): use a validation split, never test
    data. ``bi_encoder`` is a SentenceTransformer path (or an already loaded model).
    """
    units = _units(records)
    _, sentence_scores = _bi_encoder_similarities(
        records, bi_encoder, units, batch_size=batch_size, show_progress_bar=show_progress_bar
    )
    relevant, kept_chars, lengths = [], [], []
    for record, record_units, record_scores in zip(records, units, sentence_scores, strict=True):
        for i, (spans, cosines) in enumerate(zip(record_units, record_scores, strict=True)):
            rel, length = _unit_arrays(record, i, spans)
            relevant.append(rel)
            lengths.append(length)
            kept_chars.append((cosines[:, None] >= GRID[None, :]) * length[:, None])
    return _best_threshold(relevant, kept_chars, lengths, beta)


def _runs(text: str, spans: Sequence[Span], keep: Sequence[bool]) -> list[Span]:
    """Kept sentences merged into runs; a run takes the whitespace between its sentences."""
    runs: list[Span] = []
    previous = False
    for span, kept in zip(spans, keep, strict=True):
        if kept and previous and runs:
            runs[-1] = (runs[-1][0], span[1])
        elif kept:
            runs.append(span)
        previous = bool(kept)
    return runs


def _keep_all(records: Sequence[Record]) -> Kept:
    return [[[(0, len(text))] for text in record.texts] for record in records]


def _keep_first_sentence(records: Sequence[Record], units: list[list[list[Span]]]) -> Kept:
    return [[spans[:1] for spans in record_units] for record_units in units]


# --------------------------------------------------------------------------- evaluate


def _method(
    records: Sequence[Record],
    units: list[list[list[Span]]],
    *,
    scores: Scores | None = None,
    kept: Kept | None = None,
) -> dict[str, float | None]:
    row: dict[str, float | None] = dict.fromkeys(METRICS)
    if scores is not None:
        row.update(ranking_metrics(records, scores))
    if kept is not None:
        row.update(pruning_metrics(records, kept, units))
    return row


def evaluate(
    model: Any,
    records: Sequence[Record],
    *,
    threshold: float | None = None,
    batch_size: int = 32,
    baselines: bool = True,
    bi_encoder: Any = None,
    bi_encoder_threshold: float = 0.3,
    show_progress_bar: bool | None = None,
) -> dict[str, Any]:
    """Score the model and (with ``baselines``) the baselines on ``records``; see the module doc.

    Args:
        model: A :class:`~pruning_encoder.PruningEncoder` or its inner model (``process``,
            ``config``).
        records: The evaluation records.
        threshold: The model's keep threshold; defaults to ``config.default_threshold``.
        batch_size: Pairs per forward pass (and strings per bi-encoder batch).
        baselines: Also score ``bm25``, ``bi-encoder``, ``keep-all`` and ``keep-first-sentence``.
        bi_encoder: A SentenceTransformer path (e.g. the untrained backbone) or loaded model;
            without one the bi-encoder baseline is skipped with a warning.
        bi_encoder_threshold: Cosine at or above which the bi-encoder keeps a sentence.
        show_progress_bar: Passed to ``process()`` and the bi-encoder.

    Returns:
        ``{"methods": {name: {metric: value or None}}, "counts": {...}, "threshold": ...,
        "bi_encoder_threshold": ...}``, JSON-serialisable.
    """
    records = list(records)
    used = float(model.config.default_threshold if threshold is None else threshold)
    units = _units(records)
    results = _run_model(
        model,
        records,
        threshold=used,
        batch_size=batch_size,
        probabilities=False,
        show_progress_bar=show_progress_bar,
    )
    has_ranking = bool(model.config.has_ranking_head)
    model_scores = (
        [[float(r["reranking_score"]) for r in group] for group in results] if has_ranking else None
    )
    model_kept = [[[tuple(s) for s in r["kept_spans"]] for r in group] for group in results]
    methods = {"model": _method(records, units, scores=model_scores, kept=model_kept)}
    if baselines:
        methods["bm25"] = _method(records, units, scores=_bm25_scores(records))
        if bi_encoder is None:
            logger.warning("No bi_encoder given: skipping the bi-encoder baseline.")
        else:
            text_scores, sentence_scores = _bi_encoder_similarities(
                records,
                bi_encoder,
                units,
                batch_size=batch_size,
                show_progress_bar=show_progress_bar,
            )
            kept = [
                [
                    _runs(text, spans, list(cosines >= bi_encoder_threshold))
                    for text, spans, cosines in zip(
                        record.texts, record_units, record_scores, strict=True
                    )
                ]
                for record, record_units, record_scores in zip(
                    records, units, sentence_scores, strict=True
                )
            ]
            methods["bi-encoder"] = _method(records, units, scores=text_scores, kept=kept)
        methods["keep-all"] = _method(records, units, kept=_keep_all(records))
        methods["keep-first-sentence"] = _method(
            records, units, kept=_keep_first_sentence(records, units)
        )
    relevance = [rel for record in records for rel in record.relevance]
    counts = {
        "queries": len(records),
        "texts": len(relevance),
        "relevant_texts": int(sum(rel > 0 for rel in relevance)),
        "sentences": sum(len(spans) for record_units in units for spans in record_units),
        "relevant_sentences": sum(
            _mostly_inside(unit, record.relevant_spans[i])
            for record, record_units in zip(records, units, strict=True)
            for i, spans in enumerate(record_units)
            for unit in spans
        ),
    }
    return {
        "methods": methods,
        "counts": counts,
        "threshold": used,
        "bi_encoder_threshold": float(bi_encoder_threshold),
    }


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width table: one row per method, one column per metric; "—" where one is missing.

    Values have 3 decimals, percentages (``*_pct``) 1 decimal.
    """
    methods: dict[str, dict[str, Any]] = report["methods"]
    names = list(METRICS)
    for row in methods.values():
        names.extend(name for name in row if name not in names)
    names = [name for name in names if any(row.get(name) is not None for row in methods.values())]

    def cell(name: str, value: Any) -> str:
        if value is None:
            return "—"
        return f"{value:.1f}" if name.endswith("_pct") else f"{value:.3f}"

    headers = ["method", *(_LABELS.get(name, name) for name in names)]
    rows = [
        [method, *(cell(name, row.get(name)) for name in names)] for method, row in methods.items()
    ]
    widths = [max(len(r[j]) for r in [headers, *rows]) for j in range(len(headers))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
