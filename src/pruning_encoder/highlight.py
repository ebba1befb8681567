"""The whole context with its kept sentences marked: one rule for Python, the CLI and the service.

Each run of consecutive kept sentences (a result's ``kept_spans``) is wrapped in one pair of tags;
whitespace at the edges of a run stays outside the tags, so that ``<mark>A. B.</mark> C.`` marks
two adjacent kept sentences ``A.`` and ``B.`` of ``A. B. C.``. Without ``html``, the text is the
original: removing the tags gives the context back, character for character. With ``html``,
every piece of the context is HTML-escaped (``<``, ``>``, ``&``, quotes) and the tags are not.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_POST_TAG", "DEFAULT_PRE_TAG", "highlight", "marked_spans"]

DEFAULT_PRE_TAG = "<mark>"
DEFAULT_POST_TAG = "</mark>"


def marked_spans(context: str, kept_spans: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """The ``(start, end)`` character offsets the tags wrap: each kept span without the
    whitespace at its edges (spans of whitespace only are dropped).

    Raises:
        ValueError: A span is out of range of ``context``, or the spans overlap or are unsorted.
    """
    marked: list[tuple[int, int]] = []
    previous_end = 0
    for span in kept_spans:
        start, end = int(span[0]), int(span[1])
        if not previous_end <= start <= end <= len(context):
            raise ValueError(
                f"kept span {[start, end]} does not fit a context of {len(context)} characters "
                "after the previous span: pass the context the result was computed for."
            )
        previous_end = end
        piece = context[start:end]
        start += len(piece) - len(piece.lstrip())
        end -= len(piece) - len(piece.rstrip())
        if start < end:
            marked.append((start, end))
    return marked


def check_tags(pre_tag: str | None, post_tag: str | None) -> tuple[str, str] | None:
    """The tags if both are given, None if neither is: the rule of every surface.

    Raises:
        ValueError: Only one of them is given.
    """
    if (pre_tag is None) != (post_tag is None):
        raise ValueError("pre_tag and post_tag go together: give both or neither.")
    return None if pre_tag is None or post_tag is None else (pre_tag, post_tag)


def highlight(
    result: Mapping[str, Any],
    context: str,
    *,
    pre_tag: str | None = None,
    post_tag: str | None = None,
    html: bool = False,
) -> str:
    """``context`` with each run of kept sentences of ``result`` wrapped in the tags.

    Args:
        result: A ``process()`` result (only its ``kept_spans`` are read).
        context: The context ``result`` was computed for.
        pre_tag: Written before each kept run (default ``<mark>``); give both tags or neither.
        post_tag: Written after each kept run (default ``</mark>``).
        html: Escape the context's text for HTML (the tags are written as given).

    Returns:
        The whole context with the kept runs marked.

    Raises:
        ValueError: Only one of the tags is given; ``result`` has no ``kept_spans``, or they do
            not fit ``context``.

    Example:
        >>> context = "The Louvre opened in 1793. Cats purr."
        >>> highlight({"kept_spans": [(0, 26)]}, context)
        '<mark>The Louvre opened in 1793.</mark> Cats purr.'
        >>> highlight({"kept_spans": [(0, 26)]}, context, pre_tag="[[", post_tag="]]")
        '[[The Louvre opened in 1793.]] Cats purr.'
    """
    pre_tag, post_tag = check_tags(pre_tag, post_tag) or (DEFAULT_PRE_TAG, DEFAULT_POST_TAG)
    if "kept_spans" not in result:
        raise ValueError("result has no kept_spans: pass a process() result.")
    escape = html_lib.escape if html else str
    pieces: list[str] = []
    position = 0
    for start, end in marked_spans(context, result["kept_spans"]):
        pieces += [escape(context[position:start]), pre_tag, escape(context[start:end]), post_tag]
        position = end
    pieces.append(escape(context[position:]))
    return "".join(pieces)
