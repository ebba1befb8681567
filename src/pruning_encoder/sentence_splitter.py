"""Sentence splitting for English, Japanese and Chinese, as character spans into the text.

Boundaries come from `sentencex <https://github.com/santhoshtr/sentencex>`_ (Wikimedia's
rule-based segmenter; its segments are exact substrings, so spans map back onto the context
without any normalisation). A thin layer of rules of our own handles what it does not: line
breaks and bullets, inline enumerations (``1. … 2. …``, ``a) … b) …``), citation markers glued
to the full stop (``1889.[3]``, ``¹``), no boundary before a lowercase word or after ``approx.``
before a number, and closing brackets after a Japanese or Chinese mark.

This module is shipped next to the model weights and loaded with ``trust_remote_code``, so it
imports only the standard library and ``sentencex``; where ``sentencex`` is missing, transformers
names it (``pip install sentencex``).
"""

# Full-width CJK punctuation is what this module is about, not a confusable typo.
# ruff: noqa: RUF001, RUF002

from __future__ import annotations

import bisect
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple, TypeAlias

from sentencex import segment

__all__ = [
    "SentenceSplitter",
    "Span",
    "detect_language",
    "resolve_spans",
    "spans_from_sentences",
    "split_sentences",
]

Span: TypeAlias = tuple[int, int]
SentenceSplitter: TypeAlias = Callable[[str], Sequence[str] | Sequence[Span]]

_LANGUAGES = ("auto", "en", "ja", "zh")
_CLOSERS = "\"'”’)]}»」』）】〕》〉"
_CJK_MARKS = frozenset("。！？")
_PREVIEW_CHARS = 40
_HEAD_CHARS = 64
_BREAK_CHARS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

_NON_SPACE = re.compile(r"\S")
_LINE_BREAK = re.compile(f"[{_BREAK_CHARS}]\\s*")
_BREAK_CHAR = re.compile(f"[{_BREAK_CHARS}]")
# sentencex (1.0) panics on some non-ASCII whitespace; one ASCII character for each keeps offsets.
_UNUSUAL_SPACE = re.compile(r"[^\S \t\n\r]")
_BULLET = re.compile(
    r"(?:[-*+•‣◦▪⁃]|\d{1,3}(?:\.\d{1,3})*[.)]|[A-Za-z][.)]|[IVXivx]{1,5}[.)]"
    r"|\((?:\d{1,3}|[A-Za-z])\))[ \t]+"
)
_LONE_MARKER = re.compile(r"[-*+•‣◦▪⁃]?[ \t]*(?:\d{1,3}|[A-Za-z]|[IVXivx]{1,5})(?:\.\)|[.)])\s*")
# An item marker of an inline enumeration: "1. ", "2.) ", "b) ", "(c) ", "D. ", "• 9. ".
_MARKER_END = re.compile(r"[.)]\)?[ \t]+(?=\S)")
_LABEL_BEFORE = frozenset(" \t(•‣◦▪⁃")
_MARKER_LABEL = re.compile(r"\s(?:[•‣◦▪⁃][ \t]*)?(\(?)(?:(\d{1,3})|([a-z])|([A-Z]))\Z")
_CITATION_STARTS = frozenset(" \t[⁰¹²³⁴⁵⁶⁷⁸⁹")
# "[3]", "[citation needed]", "¹": but "[text](url)" is a Markdown link starting a sentence.
_CITATIONS = re.compile(r"(?:[ \t]*(?:\[[^\[\]\n]{1,40}\](?!\()|[⁰¹²³⁴⁵⁶⁷⁸⁹]+))+")
_CLOSING = re.compile(f"[{re.escape(_CLOSERS)}]+")
# An ellipsis glued to the mark before it ("?...", "……" after a full-width mark) ends that
# sentence: it never starts the next.
_ELLIPSIS = re.compile(r"[…⋯]+|\.{3,}")
_ELLIPSIS_CHARS = "…⋯."
_HEADING = re.compile(r"#{1,6}[ \t]")
_KANA = re.compile("[\u3041-\u309f\u30a1-\u30fa\u30fd-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
_HAN_RUN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")

# Titles never end a sentence before a name; sentencex misses some ("Ms. Smith").
_TITLES = frozenset({"mr", "mrs", "ms", "mx", "dr", "prof", "rev", "hon"})
# Abbreviations that sentencex ends a sentence after when a number follows ("approx. 3.14").
_NUMBER_ABBREVIATIONS = frozenset(
    {
        *("no", "nos", "fig", "figs", "vol", "vols", "pp", "p", "eq", "eqs", "sec", "ch"),
        *("art", "ref", "tab", "approx", "ca", "c", "cf", "op", "nr", "n°", "pg", "para"),
    }
)


def detect_language(text: str) -> str:
    """Guess the language of ``text`` for sentence splitting.

    Returns ``"ja"`` if the text contains Hiragana or Katakana, otherwise ``"zh"`` if it contains
    a CJK sentence ender (``。！？``) or if CJK ideographs make up at least 10% of its non-space
    characters, otherwise ``"en"``.

    Example:
        >>> [detect_language(t) for t in ("今日は晴れです。", "今天天气很好。", "Hi.")]
        ['ja', 'zh', 'en']
    """
    if _KANA.search(text):
        return "ja"
    if any(mark in text for mark in _CJK_MARKS):
        return "zh"
    han = sum(map(len, _HAN_RUN.findall(text)))
    if han and han * 10 >= sum(map(len, text.split())):
        return "zh"
    return "en"


def split_sentences(text: str, language: str = "auto") -> list[Span]:
    """Split ``text`` into sentences, returned as ``(start, end)`` spans into ``text``.

    Spans are sorted, disjoint, non-empty and stripped of surrounding whitespace, and every
    non-whitespace character of ``text`` lies in exactly one span. A blank line always ends a
    sentence; a single line break does too, unless it wraps running text (the line ends in a
    lowercase word, digit, ``,`` or ``;`` and the next line starts with a lowercase letter).
    Within a block of lines, boundaries are sentencex's (see the module docstring), adjusted by
    our rules: an inline enumeration (``1. … 2. …``) gives one sentence per item, the marker
    kept with its item; a citation marker glued to the full stop (``.[3]``, ``.¹``) stays with
    the sentence it ends; no sentence starts with a lowercase letter, with a number after
    ``approx.``-like abbreviations, or with a closing bracket, or without whitespace before it
    (except after ``。！？``); an ellipsis (``……``, ``...``) glued to the mark before it ends that
    sentence, never starts the next.

    Args:
        text: The text to split.
        language: ``"en"``, ``"ja"``, ``"zh"``, or ``"auto"`` to use :func:`detect_language`.

    Returns:
        The sentence spans.

    Raises:
        ValueError: If ``language`` is not one of the supported values.

    Example:
        >>> text = "Dr. Smith paid $2.5 million for it in the U.S.A. Was it worth it? Yes."
        >>> [text[s:e] for s, e in split_sentences(text)]
        ['Dr. Smith paid $2.5 million for it in the U.S.A.', 'Was it worth it?', 'Yes.']
        >>> text = "It opened in 1889.[3] Steps: 1. Buy a ticket 2. Take the lift"
        >>> [text[s:e] for s, e in split_sentences(text)]
        ['It opened in 1889.[3]', 'Steps:', '1. Buy a ticket', '2. Take the lift']
    """
    if language not in _LANGUAGES:
        raise ValueError(f"language must be one of {_LANGUAGES}, got {language!r}")
    first = _NON_SPACE.search(text)
    if first is None:
        return []
    if language == "auto":
        language = detect_language(text)
    spans: list[Span] = []
    block_start = line_start = first.start()
    for brk in _LINE_BREAK.finditer(text, block_start):
        if _line_break_ends_sentence(text, brk, line_start):
            _split_block(text[block_start : brk.start()], block_start, language, spans)
            block_start = brk.end()
        line_start = brk.end()
    _split_block(text[block_start:], block_start, language, spans)
    return spans


def _line_break_ends_sentence(text: str, brk: re.Match[str], line_start: int) -> bool:
    after = brk.end()
    if after == len(text):
        return True
    if not text[after].islower() or _BULLET.match(text, after) or _HEADING.match(text, line_start):
        return True
    breaks = brk.group()
    if len(_BREAK_CHAR.findall(breaks)) - breaks.count("\r\n") > 1:
        return True
    # text[line_start] is not whitespace, so this stops within the current line.
    end = brk.start()
    while text[end - 1].isspace():
        end -= 1
    last = text[end - 1]
    return not (last.islower() or last.isdigit() or last in ",;")


def _split_block(block: str, offset: int, language: str, spans: list[Span]) -> None:
    """Append the sentence spans of ``block``, which starts at ``offset`` in the text."""
    cuts: list[int] = []
    position = 0
    for piece in segment(language, block if block.isascii() else _UNUSUAL_SPACE.sub(" ", block)):
        position += len(piece)
        if position == len(block):
            break
        cut = _adjusted_cut(block, position)
        previous = cuts[-1] if cuts else 0
        if (
            cut is not None
            and cut > previous
            and _starts_sentence(block, cut)
            # A list marker alone ("1.") stays with the item it introduces.
            and not (cut - previous < 12 and _LONE_MARKER.fullmatch(block, previous, cut))
        ):
            cuts.append(cut)
    cuts = _with_enumerations(block, cuts)
    piece_start = 0
    for cut in [*cuts, len(block)]:
        _append_stripped(block, piece_start, cut, offset, spans)
        piece_start = cut


def _adjusted_cut(block: str, cut: int) -> int | None:
    """Move a boundary past an ellipsis, closing brackets and citation markers glued to the end
    of the sentence; ``None`` at the block's end."""
    if not block[cut - 1].isspace() and (ellipsis := _ELLIPSIS.match(block, cut)):
        cut = ellipsis.end()
        if cut == len(block):
            return None
    if block[cut] in _CLOSERS and not block[cut - 1].isspace():
        cut = _CLOSING.match(block, cut).end()  # type: ignore[union-attr]
    if (
        block[cut : cut + 1] in _CITATION_STARTS
        and (citations := _CITATIONS.match(block, cut))
        and _head(block, cut).rstrip(_CLOSERS).endswith((".", "!", "?", "…", "。", "！", "？"))
    ):
        cut = citations.end()
    if cut == len(block) or (block[cut].isspace() and not _NON_SPACE.search(block, cut)):
        return None
    return cut


def _head(block: str, cut: int) -> str:
    """The text just before ``cut``, without trailing whitespace (bounded: scans stay linear)."""
    return block[max(0, cut - _HEAD_CHARS) : cut].rstrip()


def _starts_sentence(block: str, cut: int) -> bool:
    before = _head(block, cut)
    following = block[cut]
    if following.isspace():
        following = _NON_SPACE.search(block, cut).group()  # type: ignore[union-attr]
    # No whitespace at the boundary ("One.Two", a URL, a decimal) is no boundary, except after
    # a CJK mark, or "!?" before non-ASCII text or closed by an ellipsis.
    elif not block[cut - 1].isspace() and not _mark_needs_no_space(before, following):
        return False
    if following.islower():
        return False
    if not before.endswith("."):
        return True
    words = before[:-1].rsplit(None, 1)
    word = words[-1].lstrip("([").lower() if words else ""
    return word not in _TITLES and (not following.isdigit() or word not in _NUMBER_ABBREVIATIONS)


def _mark_needs_no_space(before: str, following: str) -> bool:
    """Whether a sentence may start right after ``before`` with no whitespace between: after
    ``。！？`` (Japanese and Chinese put no space there), after ``!?`` before non-ASCII text, and
    after ``!?`` closed by an ellipsis (``Why?…Nobody``)."""
    mark = before.rstrip(_CLOSERS + _ELLIPSIS_CHARS)
    if mark.endswith(("。", "！", "？")):
        return True
    ellipsis = before.endswith(tuple(_ELLIPSIS_CHARS))
    return mark.endswith(("!", "?")) and (ellipsis or not following.isascii())


def _with_enumerations(block: str, cuts: list[int]) -> list[int]:
    """Cut before every item of an inline enumeration ("1. … 2. …"), after none of its markers."""
    chain: list[_Marker] = []
    items: list[_Marker] = []
    for marker in _markers(block):
        if chain and _follows(chain[-1], marker):
            chain.append(marker)
            continue
        if len(chain) > 1:
            items.extend(chain)
        chain = [marker] if _may_start_enumeration(block, marker.start) else []
    if len(chain) > 1:
        items.extend(chain)
    if not items:
        return cuts
    starts = [marker.start for marker in items]

    def after_a_marker(cut: int) -> bool:
        index = bisect.bisect_left(starts, cut) - 1
        return index >= 0 and cut <= items[index].end

    kept = [cut for cut in cuts if not after_a_marker(cut)]
    return sorted({*kept, *(start for start in starts if start)})


class _Marker(NamedTuple):
    start: int
    end: int  # after the whitespace that follows the marker
    kind: str  # "1" for numbers, "a" for letters, then the punctuation: "1.", "a)", "1.)"
    value: int


def _markers(block: str) -> Iterator[_Marker]:
    """Candidate item markers ("1. ", "b) ", "• 9. "): found from their punctuation, which is
    rarer than their first character, so that the scan stays fast."""
    for punctuation in _MARKER_END.finditer(block):
        at = punctuation.start()
        # Most candidates end a word ("city. "): ruled out here, before the slower regex.
        if not at or not (block[at - 1].isdigit() or at < 2 or block[at - 2] in _LABEL_BEFORE):
            continue
        window = block[max(0, at - 8) : at]
        if at <= 8:
            window = " " + window
        if label := _MARKER_LABEL.search(window):
            opening, number, lower, upper = label.groups()
            style = "1" if number else "a" if lower else "A"
            kind = opening + style + punctuation.group().strip()
            value = int(number) if number else ord(lower or upper)
            start = at - len(window) + label.start() + 1
            yield _Marker(start, punctuation.end(), kind, value)


def _follows(previous: _Marker, marker: _Marker) -> bool:
    # An empty item ("A. B. Smith": initials) is no enumeration.
    return (
        marker.kind == previous.kind
        and marker.value == previous.value + 1
        and marker.start > previous.end
    )


def _may_start_enumeration(block: str, start: int) -> bool:
    before = _head(block, start)
    return not before or before.endswith((".", "!", "?", ":", ";"))


def _append_stripped(block: str, start: int, end: int, offset: int, spans: list[Span]) -> None:
    while start < end and block[start].isspace():
        start += 1
    while end > start and block[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((offset + start, offset + end))


def spans_from_sentences(text: str, sentences: Sequence[str]) -> list[Span]:
    """Locate pre-split sentences in ``text``, in order.

    Each sentence is stripped of surrounding whitespace and searched for from the end of the
    previous match; empty or whitespace-only sentences are skipped.

    Args:
        text: The text the sentences were taken from.
        sentences: The sentences, in the order they appear in ``text``.

    Returns:
        One span per non-empty sentence.

    Raises:
        ValueError: If a sentence cannot be found after the previous one.

    Example:
        >>> spans_from_sentences("Go. Go. Stop.", ["Go.", " Go. ", "Stop."])
        [(0, 3), (4, 7), (8, 13)]
    """
    if isinstance(sentences, str):
        raise TypeError("sentences must be a sequence of strings, not a single string")
    spans: list[Span] = []
    offset = 0
    for index, sentence in enumerate(sentences):
        needle = sentence.strip()
        if not needle:
            continue
        found = text.find(needle, offset)
        if found < 0:
            preview = needle[:_PREVIEW_CHARS] + ("..." if len(needle) > _PREVIEW_CHARS else "")
            raise ValueError(
                f"sentence {index} ({preview!r}) was not found in the context after offset {offset}"
            )
        offset = found + len(needle)
        spans.append((found, offset))
    return spans


def resolve_spans(text: str, splitter: SentenceSplitter) -> list[Span]:
    """Run a user-provided sentence splitter and turn its output into validated spans.

    Args:
        text: The text to split.
        splitter: A callable returning either sentence strings (located with
            :func:`spans_from_sentences`) or ``(start, end)`` pairs of ints into ``text``, which
            must be non-empty, in bounds, sorted and non-overlapping.

    Returns:
        The sentence spans.

    Raises:
        ValueError: If the splitter's output is malformed or does not match ``text``.

    Example:
        >>> resolve_spans("One. Two.", lambda t: t.split(" "))
        [(0, 4), (5, 9)]
        >>> resolve_spans("One. Two.", lambda t: [(0, 4), (5, 9)])
        [(0, 4), (5, 9)]
    """
    result: object = splitter(text)
    # ValueError, not TypeError: every kind of malformed splitter output raises the same error.
    if isinstance(result, str) or not isinstance(result, Sequence):
        raise ValueError(
            f"splitter must return a list of strings or (start, end) pairs, got {result!r:.80}"
        )
    if all(isinstance(item, str) for item in result):
        try:
            return spans_from_sentences(text, result)
        except ValueError as error:
            raise ValueError(f"splitter output does not match the text: {error}") from None
    spans: list[Span] = []
    previous_end = 0
    for index, item in enumerate(result):
        try:
            start, end = (operator.index(value) for value in item)
            if any(isinstance(value, bool) for value in item):
                raise TypeError
        except (TypeError, ValueError):
            raise ValueError(
                f"splitter returned an invalid item {index}: {item!r:.80}; expected either only "
                "strings or only (start, end) pairs of ints"
            ) from None
        if not 0 <= start < end <= len(text):
            raise ValueError(
                f"splitter span {index} ({start}, {end}) is empty or out of bounds "
                f"for a text of length {len(text)}"
            )
        if start < previous_end:
            raise ValueError(
                f"splitter spans must be sorted and non-overlapping: span {index} ({start}, {end}) "
                f"starts before the previous span ends ({previous_end})"
            )
        spans.append((start, end))
        previous_end = end
    return spans
