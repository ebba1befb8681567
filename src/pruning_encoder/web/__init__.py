"""Pages that show what was kept: the service's page (``GET /``) and ``prune --html`` reports.

Both are single self-contained HTML documents (styles and script inline, no network) drawn by
the same script, ``render.js``: kept sentences marked, each sentence's keep-probability on hover,
and a threshold slider that re-applies the threshold to the embedded probabilities.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from ..checks import check_threshold
from ..context_pruning import sentence_tokens

__all__ = ["html_report", "report_page", "service_page"]


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _fill(template: str, **parts: str) -> str:
    """``template`` with each ``/*NAME*/`` marker replaced, in order; each part is inserted once
    and never scanned again, so a part may contain a marker's text."""
    for name, part in parts.items():
        before, marker, after = template.partition(f"/*{name.upper()}*/")
        assert marker, name
        template = f"{before}{part}{after}"
    return template


def _script_json(value: Any) -> str:
    """JSON safe inside ``<script>``: no ``<``, ``>`` or ``&`` that could end the element."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def service_page() -> str:
    """The service's page: a question, contexts, a Prune button calling ``/prune``, the
    highlighted results with a threshold slider, and the API's error message on failure."""
    return _fill(_asset("page.html"), style=_asset("style.css"), script=_asset("render.js"))


def report_page(question: str, documents: Sequence[dict[str, Any]], threshold: float) -> str:
    """A self-contained page for ``documents``.

    Args:
        question: The question the documents were pruned for.
        documents: One dict per document: ``text``, ``spans`` (``[start, end)`` character
            offsets of its sentences), ``probabilities`` (each sentence's keep-probability),
            ``score`` (reranking score or None) and optionally ``name`` and ``tokens`` (tokens
            per sentence).
        threshold: Where the slider starts.
    """
    data = {"question": question, "threshold": threshold, "documents": list(documents)}
    return _fill(
        _asset("report.html"),
        style=_asset("style.css"),
        data=_script_json(data),
        script=_asset("render.js"),
    )


def html_report(
    model: Any,
    question: str,
    contexts: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    threshold: float | None = None,
    batch_size: int = 32,
    results: Sequence[dict[str, Any]] | None = None,
) -> str:
    """Prune ``contexts`` for ``question`` and return the page that shows it (``prune --html``).

    Args:
        model: A :class:`~pruning_encoder.PruningEncoder`.
        question: The question.
        contexts: The documents.
        names: A label per document (default: none).
        threshold: The slider's start (default: the model's ``default_threshold``).
        batch_size: Passed to ``process()``.
        results: The ``process(question, contexts, return_sentence_probabilities=True)``
            results, if already computed (then the model is not run again).

    Returns:
        The HTML page, one string.

    Raises:
        ValueError, TypeError: As ``process()`` (e.g. a question too long for the window, or a
            threshold that is not a number in [0, 1]).

    Example:
        >>> page = html_report(model, "Who wrote Hamlet?", ["Hamlet is by Shakespeare."])
        ... # doctest: +SKIP
    """
    used = check_threshold(threshold, default=model.config.default_threshold)
    if results is None:
        results = model.process(
            question,
            list(contexts),
            threshold=used,
            batch_size=batch_size,
            return_sentence_probabilities=True,
            show_progress_bar=False,
        )
    documents = []
    for i, (context, result) in enumerate(zip(contexts, results, strict=True)):
        spans = [tuple(span) for span in result["sentence_spans"]]
        tokens = sentence_tokens(model.tokenizer, context, spans)
        documents.append(
            {
                "name": None if names is None else names[i],
                "text": context,
                "spans": [list(span) for span in spans],
                "probabilities": result["sentence_probabilities"],
                "tokens": tokens,
                "score": result["reranking_score"],
            }
        )
    return report_page(question, documents, used)
