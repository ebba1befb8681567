"""Rule-based sentence splitting for English, Japanese and Chinese.

Every function returns character spans into the original text, so sentence boundaries can be
mapped back onto the context without any normalisation. This module is shipped next to the
model weights and loaded with ``trust_remote_code``, so it only imports the standard library.
"""

# Full-width CJK punctuation is what this module is about, not a confusable typo.
# ruff: noqa: RUF001, RUF002

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import TypeAlias

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
_OPENERS = "\"'“‘([{«¿¡「『（【〔《〈"
_CJK_MARKS = frozenset("。！？")
_PREVIEW_CHARS = 40
_BREAK_CHARS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

_NON_SPACE = re.compile(r"\S")
_LINE_BREAK = re.compile(f"[{_BREAK_CHARS}]\\s*")
_BREAK_CHAR = re.compile(f"[{_BREAK_CHARS}]")
_NEXT_CHAR = re.compile(r"\s*+(\S)?")
# The lookbehind makes each run of marks match only once, at its first mark, and the
# possessive quantifiers forbid backtracking: together they keep scanning linear.
_EN_ENDERS = re.compile(f"(?<![.!?…])[.!?…]++[{re.escape(_CLOSERS)}]*+")
_CJK_ENDERS = re.compile(f"(?<![.!?…。！？])[.!?…。！？]++[{re.escape(_CLOSERS)}]*+")
_BULLET = re.compile(
    r"(?:[-*+•‣◦▪]|\d{1,3}(?:\.\d{1,3})*[.)]|[A-Za-z][.)]|[IVXivx]{1,5}[.)]"
    r"|\((?:\d{1,3}|[A-Za-z])\))[ \t]+"
)
_HEADING = re.compile(r"#{1,6}[ \t]")
_ACRONYM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")
_KANA = re.compile("[\u3041-\u309f\u30a1-\u30fa\u30fd-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
_HAN_RUN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")

_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "capt", "col", "gen", "gov"),
        *("lt", "rep", "rev", "sen", "sgt", "hon", "vs", "etc", "cf", "al", "ca", "viz"),
        *("approx", "dept", "inc", "ltd", "co", "corp", "ph.d", "jan", "feb", "mar", "apr"),
        *("jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)
# These are ordinary words too ("I said no."), so they only count before a number.
_NUMBER_ABBREVIATIONS = frozenset(
    {"no", "nos", "fig", "figs", "vol", "vols", "pp", "eq", "eqs", "sec", "ch", "art", "ref", "tab"}
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

    Args:
        text: The text to split.
        language: ``"en"``, ``"ja"``, ``"zh"``, or ``"auto"`` to use :func:`detect_language`.
            ``"ja"`` and ``"zh"`` share one rule set: they also split right after ``。！？`` (and
            ``!?`` directly followed by non-ASCII text), and otherwise apply the English rules.

    Returns:
        The sentence spans.

    Raises:
        ValueError: If ``language`` is not one of the supported values.

    Example:
        >>> text = "Dr. Smith paid $2.5 million. Was it worth it? Yes."
        >>> [text[s:e] for s, e in split_sentences(text)]
        ['Dr. Smith paid $2.5 million.', 'Was it worth it?', 'Yes.']
    """
    if language not in _LANGUAGES:
        raise ValueError(f"language must be one of {_LANGUAGES}, got {language!r}")
    first = _NON_SPACE.search(text)
    if first is None:
        return []
    if language == "auto":
        language = detect_language(text)
    cjk = language != "en"
    spans: list[Span] = []
    block_start = line_start = first.start()
    for brk in _LINE_BREAK.finditer(text, block_start):
        if _line_break_ends_sentence(text, brk, line_start):
            _split_block(text, block_start, brk.start(), cjk, spans)
            block_start = brk.end()
        line_start = brk.end()
    _split_block(text, block_start, len(text), cjk, spans)
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


def _split_block(text: str, start: int, end: int, cjk: bool, spans: list[Span]) -> None:
    # A leading list marker such as "1. " must stay with its item, so scanning starts after it.
    bullet = _BULLET.match(text, start, end)
    piece = start
    pattern = _CJK_ENDERS if cjk else _EN_ENDERS
    for enders in pattern.finditer(text, bullet.end() if bullet else start, end):
        if _is_boundary(text, enders, start, end, cjk):
            _append_stripped(text, piece, enders.end(), spans)
            piece = enders.end()
    _append_stripped(text, piece, end, spans)


def _is_boundary(text: str, enders: re.Match[str], start: int, end: int, cjk: bool) -> bool:
    marks, after = enders.group(), enders.end()
    following = text[after] if after < end else ""
    if cjk and not _CJK_MARKS.isdisjoint(marks):
        return True
    # ASCII "!?" need no space before CJK text, but stay put before ASCII ("?q=1" in a URL).
    bare = not marks.rstrip(_CLOSERS).strip("!?")
    if cjk and bare and not following.isascii() and not following.isspace():
        return True
    if not following.isspace():
        return False
    char = nxt.group(1) if (nxt := _NEXT_CHAR.match(text, after, end)) else None
    if char is None:  # only whitespace follows: the block ends here anyway
        return False
    if not (char.isalnum() and not char.islower()) and char not in _OPENERS:
        return False
    return marks != "." or not _is_abbreviation(text, enders.start(), start, char)


def _is_abbreviation(text: str, dot: int, start: int, following: str) -> bool:
    window = text[max(start, dot - 32) : dot]
    if not window or window[-1].isspace():
        return False
    token = window.split()[-1].lstrip(_OPENERS)
    lowered = token.lower()
    return (
        lowered in _ABBREVIATIONS
        or (lowered in _NUMBER_ABBREVIATIONS and following.isdigit())
        or (len(token) == 1 and token.isalpha())
        or _ACRONYM.fullmatch(token) is not None
    )


def _append_stripped(text: str, start: int, end: int, spans: list[Span]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


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
