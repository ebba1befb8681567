"""The input shapes of ``process()`` (as in Provence): ``str`` + ``str``, ``str`` + list, list +
list, list + list of lists, each document a string or (``presplit``) a list of sentences; grouped
here as (question, documents) pairs, checked, and the results shaped back like the input.

This module travels with saved weights, so it imports only the standard library and its
siblings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from .checks import check_text
from .sentence_splitter import Span

Group = tuple[str, list[Any]]
T = TypeVar("T")


def group_inputs(
    question: Any, context: Any, title: Any, presplit: bool
) -> tuple[list[Group], list[list[str | None]], str]:
    """``process()``'s inputs as (question, documents) groups, their titles shaped alike, and
    the name of the input shape (``"single"``, ``"documents"``, ``"aligned"`` or ``"nested"``);
    every text checked once (:func:`~pruning_encoder.checks.check_text`), named by its position.

    Raises:
        ValueError: Inputs of the wrong shape, or a text holding a lone surrogate.
        TypeError: A question or a title that is not a string.
    """
    groups, shape = _normalise(question, context, presplit)
    titles = _normalise_titles(title, groups, shape)
    _check_texts(groups, shape, presplit, titles)
    return groups, titles, shape


def shaped_like_input(grouped: list[list[T]], shape: str) -> T | list[T] | list[list[T]]:
    """The results of each group, shaped as the input was (see :func:`group_inputs`)."""
    if shape == "single":
        return grouped[0][0]
    if shape == "documents":
        return grouped[0]
    if shape == "aligned":
        return [group[0] for group in grouped]
    return grouped


def join_sentences(sentences: Sequence[str]) -> tuple[str, list[Span]]:
    """A presplit document as one text (its stripped, non-empty sentences joined by one space)
    and the spans of those sentences in it."""
    spans: list[Span] = []
    parts: list[str] = []
    position = 0
    for sentence in sentences:
        sentence = sentence.strip()
        if not sentence:
            continue
        if parts:
            position += 1
        spans.append((position, position + len(sentence)))
        parts.append(sentence)
        position += len(sentence)
    return " ".join(parts), spans


def is_document(value: Any, presplit: bool) -> bool:
    """Whether ``value`` is one document: a string, or with ``presplit`` a list of strings."""
    if presplit:
        return isinstance(value, list | tuple) and all(isinstance(s, str) for s in value)
    return isinstance(value, str)


def _check_texts(groups: list[Group], shape: str, presplit: bool, titles: Any) -> None:
    """Every question, context (or sentence) and title string as :func:`check_text`, named by
    its position in the caller's input."""
    for i, (question, items) in enumerate(groups):
        check_text(question, "question" if shape in ("single", "documents") else f"question[{i}]")
        for j, item in enumerate(items):
            name = {
                "single": "context",
                "documents": f"context[{j}]",
                "aligned": f"context[{i}]",
            }.get(shape, f"context[{i}][{j}]")
            for k, text in enumerate(item if presplit else [item]):
                check_text(text, f"{name}[{k}]" if presplit else name)
            title = titles[i][j]
            if title is not None:
                check_text(title, "title")


def _normalise(question: Any, context: Any, presplit: bool) -> tuple[list[Group], str]:
    """Group the inputs as (question, documents) pairs and name the input shape; the texts
    themselves are checked by :func:`_check_texts`."""
    kind = "a list of sentences" if presplit else "a string"
    if context is None:
        raise ValueError("context is None: give a string, a list of documents, or a list of lists.")
    if isinstance(question, str):
        if is_document(context, presplit):
            return [(question, [context])], "single"
        if isinstance(context, list | tuple) and all(is_document(c, presplit) for c in context):
            return [(question, list(context))], "documents"
        raise ValueError(
            f"With one question, context must be a document ({kind}) or a list of documents."
        )
    if not isinstance(question, list | tuple):
        raise TypeError(f"question must be a string or a list of strings, got {type(question)}.")
    if not isinstance(context, list | tuple) or len(context) != len(question):
        got = len(context) if isinstance(context, list | tuple) else type(context).__name__
        raise ValueError(
            f"With a list of {len(question)} questions, context must be a list of the same length "
            f"(got {got})."
        )
    if all(is_document(c, presplit) for c in context):
        return [(q, [c]) for q, c in zip(question, context, strict=True)], "aligned"
    if all(
        isinstance(c, list | tuple) and all(is_document(d, presplit) for d in c) for c in context
    ):
        return [(q, list(c)) for q, c in zip(question, context, strict=True)], "nested"
    raise ValueError(
        f"With a list of questions, context must hold one document ({kind}) per question or one "
        "list of documents per question, not a mix."
    )


def _normalise_titles(title: Any, groups: list[Group], shape: str) -> list[list[str | None]]:
    if title is None or title == "first_sentence":
        return [[None] * len(items) for _, items in groups]
    if isinstance(title, str):
        return [[title] * len(items) for _, items in groups]
    try:
        if shape == "documents":
            shaped = [list(title)]
        elif shape == "aligned":
            shaped = [[t] for t in title]
        elif shape == "nested":
            shaped = [list(t) for t in title]
        else:
            shaped = []
    except TypeError:
        shaped = []
    fits = len(shaped) == len(groups) and all(
        len(group) == len(items) and all(isinstance(t, str) for t in group)
        for group, (_, items) in zip(shaped, groups, strict=False)
    )
    if not fits:
        raise ValueError(
            "title must be None, 'first_sentence', one string, or strings shaped like context."
        )
    return shaped  # type: ignore[return-value]
