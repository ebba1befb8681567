"""The argument rules of every surface, each written once: Python (``PruningEncoder``,
``process()``, the configs), the pipeline, the command line, the service, the engines and the
integrations call these, so that a value one of them accepts is accepted by all, with the same
message when refused.

This module travels with saved weights (the config and ``process()`` use it), so it imports only
the standard library and numpy.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

MODES = ("reranking_pruning", "pruning_only")
# A str can hold surrogate code points (a JSON "\ud83d" escape cut from its pair, text cut by
# UTF-16 length, bytes decoded with "surrogateescape"); no tokenizer or UTF-8 writer accepts them.
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_threshold(threshold: Any, *, default: Any = None, name: str = "threshold") -> float:
    """``threshold`` (``default`` when it is None) as a float in [0, 1].

    Args:
        threshold: The keep threshold given, or None.
        default: What None stands for (a model's ``config.default_threshold``).
        name: Its name in messages.

    Raises:
        TypeError: Not a real number (``True`` and ``False`` are refused, not read as 1 or 0).
        ValueError: Outside [0, 1] (NaN included).
    """
    if threshold is None:
        threshold = default
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.floating):
        raise TypeError(f"{name} must be a number in [0, 1], got {threshold!r}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"{name} must be within [0, 1], got {threshold}.")
    return float(threshold)


def check_top_k(top_k: Any, name: str = "top_k") -> int | None:
    """``top_k`` as None (everything) or a positive integer.

    Raises:
        ValueError: Not an integer (``True`` is refused), or zero or negative.
    """
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {top_k!r}.")
    return int(top_k)


def check_max_tokens(max_tokens: object) -> int | None:
    """A token budget: ``None`` (no budget) or a non-negative int (0 keeps nothing).

    Raises:
        TypeError: If it is not an int (``True`` and ``2.5`` are refused, not rounded).
        ValueError: If it is negative.
    """
    if max_tokens is None:
        return None
    if isinstance(max_tokens, bool):
        raise TypeError(f"max_tokens must be an int or None, got {max_tokens!r}.")
    try:
        value = operator.index(max_tokens)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"max_tokens must be an int or None, got {type(max_tokens).__name__}."
        ) from None
    if value < 0:
        raise ValueError(f"max_tokens must be at least 0, got {value}.")
    return value


def check_batch_size(batch_size: Any, name: str = "batch_size") -> int:
    """``batch_size`` as a positive integer.

    Raises:
        ValueError: Not an integer (``True`` and ``2.5`` are refused), or zero or negative.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"{name} must be a positive integer, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"{name} must be a positive integer, got {batch_size}.")
    return int(batch_size)


def check_choice(value: Any, choices: Sequence[str], name: str) -> str:
    """``value`` if it is one of ``choices``.

    Raises:
        ValueError: ``Unknown <name> <value>: expected one of <choices>.``
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"Unknown {name} {value!r}: expected one of {', '.join(choices)}.")
    return value


def check_mode(mode: Any) -> str:
    """``mode`` if it is ``"reranking_pruning"`` or ``"pruning_only"``; else ValueError."""
    return check_choice(mode, MODES, "mode")


def check_num_labels(num_labels: Any, where: str | None = None) -> int:
    """A ranking head's number of labels, which must be 1: one relevance logit, scored by
    :func:`~pruning_encoder.context_pruning.ranking_scores`. As
    ``sentence_transformers.CrossEncoder.rank`` does, several labels are refused, rather than
    read one way by one method and another way by the next.

    Args:
        num_labels: The labels (logits) of the ranking head.
        where: What has them, in messages (a model's path); None for an argument.

    Raises:
        ValueError: Not 1.
    """
    if isinstance(num_labels, bool) or num_labels != 1:
        prefix = "" if where is None else f"{where}: "
        raise ValueError(
            f"{prefix}num_labels={num_labels!r}, but a PruningEncoder's ranking head has one "
            "label (a relevance logit): models with several ranking labels are not supported."
        )
    return 1


def check_ranking_head(config: Any, what: str) -> None:
    """Refuse ``what`` (an option or method) for a ``pruning_only`` model, which has no
    ranking head and so no scores.

    Raises:
        ValueError: ``<what> needs reranking scores, but this model is pruning_only.``
    """
    if not config.has_ranking_head:
        raise ValueError(f"{what} needs reranking scores, but this model is pruning_only.")


def check_question_tokens(
    taken: int, *, limit: int, max_length: int, question: str | None = None
) -> None:
    """Refuse a question (with its title) of ``taken`` tokens when more than ``limit`` of a
    ``max_length``-token window, since too little would remain for the context.

    Raises:
        ValueError: Naming both counts, the limit and, when given, the question's first 80
            characters.
    """
    if taken > limit:
        quoted = "" if question is None else f" (question {question[:80]!r})"
        raise ValueError(
            f"The question (and title) take {taken} tokens, leaving too little of "
            f"max_length={max_length} for the context: at most {limit} fit{quoted}."
        )


def check_text(value: Any, what: str) -> str:
    """``value`` if it is a string of valid Unicode text: a question, a context, a sentence, a
    title or a document.

    Args:
        value: The text.
        what: Its name in messages, e.g. ``"context[2]"``.

    Raises:
        TypeError: Not a string.
        ValueError: It holds a lone surrogate (e.g. ``"\\udbc0"``), which no tokenizer reads and
            UTF-8 cannot encode; the message names ``what``, the code point and its position.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}.")
    if not value.isascii() and (found := _SURROGATE.search(value)):
        raise ValueError(
            f"{what} holds a lone surrogate (U+{ord(found.group()):04X}) at character "
            f"{found.start()}: not valid Unicode text. Remove or replace it, e.g. with "
            "text.encode('utf-8', 'replace').decode('utf-8')."
        )
    return value
