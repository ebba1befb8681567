"""Windows and forward passes: how (question, context) pairs become the model's inputs.

A context is cut into windows of whole sentences that fit ``max_length`` with the question (an
overlong sentence into pieces); the windows of many documents are sorted by length and cut into
forward passes of at most ``batch_size * max_length`` padded tokens. ``process()`` and the
training data collator cut alike, so a model is trained on the inputs it is run on. This module
travels with saved weights, so it imports only the standard library, numpy, torch and
transformers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from .checks import check_question_tokens
from .sentence_splitter import Span

# What one more forward pass costs on a CPU beyond its tokens, in padded tokens: about 12 ms of
# a MiniLM pass on 2 threads, at about 5,000 tokens/s.
PASS_OVERHEAD_TOKENS = 64


@dataclass
class Template:
    """Where a tokenizer puts its special tokens around a (question, context) pair."""

    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    question_type: int
    context_type: int
    uses_token_type_ids: bool

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> Template:
        encoding = tokenizer("a", "b", add_special_tokens=True, return_token_type_ids=True)
        sequence_ids = encoding.sequence_ids(0)
        ids, types = encoding["input_ids"], encoding["token_type_ids"]
        first = sequence_ids.index(0)
        last_q = len(sequence_ids) - 1 - sequence_ids[::-1].index(0)
        first_c = sequence_ids.index(1)
        last_c = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
        return cls(
            prefix=ids[:first],
            middle=ids[last_q + 1 : first_c],
            suffix=ids[last_c + 1 :],
            question_type=types[first],
            context_type=types[first_c],
            uses_token_type_ids="token_type_ids" in tokenizer.model_input_names,
        )

    @property
    def num_special(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


@dataclass
class Window:
    """One model input: a pair's question (and title) with a run of whole sentences of its
    context (see :func:`build_windows`)."""

    document: int  # the pair it belongs to, by position among the pairs built together
    question_ids: list[int]
    title_ids: list[int]
    context_ids: list[int]
    # Each context token's sentence, numbered across the pairs built together; -1: not counted.
    sentence_of_token: np.ndarray
    # The character of its text that places each context token (see token_positions).
    position_of_token: np.ndarray


class Context(NamedTuple):
    """A context's tokens (no special tokens): ids, each token's sentence (an index into the
    context's spans), whether it counts in that sentence's mean keep-probability, and the
    character that places it (:func:`token_positions`)."""

    ids: list[int]
    sentence: np.ndarray
    counted: np.ndarray
    position: np.ndarray


def build_windows(
    tokenizer: PreTrainedTokenizerBase,
    template: Template,
    questions: Sequence[str],
    texts: Sequence[str],
    spans: Sequence[Sequence[Span]],
    titles: Sequence[str | None],
    *,
    max_length: int,
    per_sentence: bool = False,
) -> list[Window]:
    """The windows of (question, context) pairs: what ``process()`` runs the model on and what
    the training collator trains it on, so that both see the same inputs token for token.

    Each context is tokenized as :func:`tokenize_contexts` does and cut by :func:`pack_windows`
    into runs of whole sentences that fit ``max_length`` tokens with the question, the title and
    the template's special tokens. A context without sentences (empty or whitespace only) gives
    one window with no context tokens: the empty document. Windows come in pair order.

    Args:
        tokenizer: A fast tokenizer (offsets are needed).
        template: Where ``tokenizer`` puts its special tokens (:meth:`Template.of`).
        questions, texts, spans, titles: One per pair: the question, the context, its sentence
            spans (sorted character offsets into the text) and a title (None: none), which goes
            before the context in every window of the pair.
        max_length: Tokens of a window, special tokens included.
        per_sentence: Tokenize each sentence apart (see :func:`tokenize_contexts`).

    Raises:
        ValueError: A question and title longer than :func:`question_limit` tokens.
    """
    limit = question_limit(max_length, template)
    question_ids = tokenizer(list(questions), add_special_tokens=False, verbose=False)["input_ids"]
    title_ids = tokenizer(
        [title or "" for title in titles], add_special_tokens=False, verbose=False
    )["input_ids"]
    contexts = tokenize_contexts(tokenizer, texts, spans, per_sentence=per_sentence)
    windows: list[Window] = []
    first_sentence = 0
    for d, context in enumerate(contexts):
        taken = len(question_ids[d]) + len(title_ids[d])
        check_question_tokens(taken, limit=limit, max_length=max_length, question=questions[d])
        sentence = np.where(context.counted, context.sentence + first_sentence, -1)
        budget = max_length - template.num_special - taken
        for a, b in pack_windows(context.sentence, len(spans[d]), budget):
            windows.append(
                Window(
                    d,
                    question_ids[d],
                    title_ids[d],
                    context.ids[a:b],
                    sentence[a:b],
                    context.position[a:b],
                )
            )
        first_sentence += len(spans[d])
    return windows


def pack_windows(
    token_sentence: np.ndarray, num_sentences: int, budget: int
) -> list[tuple[int, int]]:
    """Token ranges of windows of whole sentences (an overlong sentence is cut into pieces)."""
    bounds = np.searchsorted(token_sentence, np.arange(num_sentences + 1), side="left")
    windows: list[tuple[int, int]] = []
    start = end = int(bounds[0])
    for i in range(num_sentences):
        s_start, s_end = int(bounds[i]), int(bounds[i + 1])
        if s_end - start <= budget:
            end = s_end
            continue
        if end > start:
            windows.append((start, end))
        start = end = s_start
        while s_end - start > budget:
            windows.append((start, start + budget))
            start = end = start + budget
        end = s_end
    if end > start or not windows:
        windows.append((start, end))
    return windows


def question_limit(max_length: int, template: Template) -> int:
    """Tokens a question (and title) may take: a window keeps at least min(16, max_length / 4)
    tokens for the context besides the special tokens."""
    return max_length - template.num_special - min(16, max_length // 4)


def token_batches(
    lengths: Sequence[int], budget: int, overhead: int = PASS_OVERHEAD_TOKENS
) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges of ``lengths`` (sorted longest first) that cut them into forward
    passes of at most ``budget`` padded tokens (count times first length; a window longer than
    the budget goes alone), chosen to minimise the padded tokens read plus ``overhead`` tokens
    per pass: an exact dynamic programme over where passes start, which splits a pass where
    lengths fall off steeply instead of padding short windows to a long one. An ``overhead`` of
    a whole budget asks for the fewest passes, which filling each pass in turn gives at once."""
    sizes = np.asarray(lengths, dtype=np.int64)
    fits = np.maximum(1, budget // np.maximum(1, sizes))  # windows a pass starting there holds
    if overhead >= budget:
        start = 0
        while start < len(sizes):
            yield start, min(len(sizes), start + int(fits[start]))
            start += int(fits[start])
        return
    cost = np.zeros(len(sizes) + 1)
    start_of = np.zeros(len(sizes) + 1, dtype=np.int64)
    for stop in range(1, len(sizes) + 1):
        # Fits grow along the sorted lengths, so no pass ending here starts before this.
        starts = np.arange(max(0, stop - int(fits[stop - 1])), stop)
        totals = cost[starts] + (stop - starts) * sizes[starts] + overhead
        totals[stop - starts > fits[starts]] = np.inf
        best = int(np.argmin(totals))
        cost[stop], start_of[stop] = totals[best], starts[best]
    ranges = []
    stop = len(sizes)
    while stop > 0:
        ranges.append((int(start_of[stop]), stop))
        stop = ranges[-1][0]
    yield from reversed(ranges)


def window_length(window: Window) -> int:
    return len(window.question_ids) + len(window.title_ids) + len(window.context_ids)


def collate(
    batch: Sequence[Window], template: Template, pad_id: int, device: torch.device
) -> tuple[dict[str, torch.Tensor], list[int]]:
    lengths = [template.num_special + window_length(w) for w in batch]
    width = max(lengths)
    input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    type_ids = np.zeros((len(batch), width), dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    context_start = []
    for i, w in enumerate(batch):
        head = template.prefix + w.question_ids + template.middle
        tail = w.title_ids + w.context_ids + template.suffix
        input_ids[i, : lengths[i]] = head + tail
        type_ids[i, len(head) : lengths[i]] = template.context_type
        type_ids[i, : len(head)] = template.question_type
        mask[i, : lengths[i]] = 1
        context_start.append(len(head) + len(w.title_ids))
    inputs = {
        "input_ids": torch.from_numpy(input_ids).to(device),
        "attention_mask": torch.from_numpy(mask).to(device),
    }
    if template.uses_token_type_ids:
        inputs["token_type_ids"] = torch.from_numpy(type_ids).to(device)
    return inputs, context_start


def token_positions(offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """The character that places each token: its last one. SentencePiece (``▁The``) and some
    byte-level BPE tokenizers include the space before a word in its token's offsets, so a
    token's first character can be the whitespace between two sentences."""
    bounds = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    return np.maximum(bounds[:, 0], bounds[:, 1] - 1)


def token_sentences(
    offsets: Sequence[tuple[int, int]], spans: Sequence[Span]
) -> tuple[np.ndarray, np.ndarray]:
    """Each context token's sentence (by :func:`token_positions`) and whether it lies inside it.

    A token outside every sentence (a stray symbol a custom splitter left out, a lone ``▁``)
    belongs to the next sentence, so that windows still hold whole sentences, but is not counted
    in its probability.
    """
    positions = token_positions(offsets)
    starts = np.asarray([s for s, _ in spans], dtype=np.int64)
    ends = np.asarray([e for _, e in spans], dtype=np.int64)
    owner = np.minimum(np.searchsorted(ends, positions, side="right"), len(spans) - 1)
    inside = (positions >= starts[owner]) & (positions < ends[owner])
    return owner, inside


def tokenize_contexts(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    spans: Sequence[Sequence[Span]],
    *,
    per_sentence: bool = False,
) -> list[Context]:
    """Each context's tokens (no special tokens), each token's sentence, whether it counts in
    that sentence's mean keep-probability (see :func:`token_sentences`) and the character that
    places it. A context without sentences has no tokens.

    ``per_sentence=False`` tokenizes each text in one piece (one call for all, with offsets).
    ``per_sentence=True`` tokenizes each sentence on its own, with the whitespace that follows it
    (the first also with what precedes it), and concatenates the ids, as OpenProvence's
    ``process()`` does: every token then belongs to, and counts in, its sentence.
    """
    contexts: list[Context] = []
    if not per_sentence:
        encoded = tokenizer(
            list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        for d, sentence_spans in enumerate(spans):
            if not sentence_spans:
                contexts.append(_empty_context())
                continue
            offsets = encoded["offset_mapping"][d]
            owner, inside = token_sentences(offsets, sentence_spans)
            contexts.append(
                Context(encoded["input_ids"][d], owner, inside, token_positions(offsets))
            )
        return contexts
    starts: list[int] = []
    pieces: list[str] = []
    for text, sentence_spans in zip(texts, spans, strict=True):
        pieces.extend(sentence_pieces(text, sentence_spans))
        if sentence_spans:  # where each piece starts in its text
            starts += [0] + [start for start, _ in sentence_spans[1:]]
    encoded = (
        tokenizer(pieces, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        if pieces
        else {"input_ids": [], "offset_mapping": []}
    )
    first = 0
    for sentence_spans in spans:
        if not sentence_spans:
            contexts.append(_empty_context())
            continue
        own = range(first, first + len(sentence_spans))
        first += len(sentence_spans)
        ids = [encoded["input_ids"][p] for p in own]
        owner = np.repeat(np.arange(len(ids), dtype=np.int64), [len(i) for i in ids])
        # A token of a sentence's piece is placed within that sentence, even one of the
        # whitespace around it, since the sentence counts it.
        position = np.concatenate(
            [
                np.clip(token_positions(encoded["offset_mapping"][p]) + starts[p], start, end - 1)
                for p, (start, end) in zip(own, sentence_spans, strict=True)
            ]
        )
        contexts.append(
            Context([t for i in ids for t in i], owner, np.ones(len(owner), dtype=bool), position)
        )
    return contexts


def _empty_context() -> Context:
    empty = np.zeros(0, dtype=np.int64)
    return Context([], empty, empty.astype(bool), empty)


def sentence_pieces(text: str, spans: Sequence[Span]) -> list[str]:
    """Each sentence of ``text`` with the whitespace that follows it, the first also with what
    precedes it: pieces that join to ``text`` (none without sentences), as OpenProvence's
    splitter hands them to its ``process()``."""
    if not spans:
        return []
    starts = [0] + [start for start, _ in spans[1:]] + [len(text)]
    return [text[a:b] for a, b in itertools.pairwise(starts)]
