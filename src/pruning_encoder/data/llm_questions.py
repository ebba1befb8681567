"""Questions written by a language model for passages: the raw material of labelled data.

The passage is shown as numbered sentences (:func:`~pruning_encoder.split_sentences`); the model
writes questions a person who has not read it might ask, each with the number of the sentence
that answers it, in its own words rather than the passage's rare ones. A question written from a
sentence is labelled at that sentence — a label that does not depend on the model reading well.
Questions that still copy a run of ``max_copied_words`` words of the passage are dropped (a
copied phrase makes the question easy to match by its words alone), and so are repeats; each
drop is reported with its reason.

Each question comes out in the input format of ``pruning-encoder label``: ``question`` and
``context`` (the passage), ``source_sentence`` (its number, from 1) and ``source_span``
(``[start, end]`` characters of the passage), and the passage's other fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from ..checks import check_text
from ..sentence_splitter import split_sentences
from .llm_client import ChatClient
from .llm_jobs import (
    InvalidReply,
    JobFailed,
    LLMJob,
    Outcome,
    ask,
    numbered,
    sentence_number,
)

QUESTION_SYSTEM = "You write the questions that people ask about texts."
QUESTION_PROMPT = """\
{title}Numbered sentences:
{sentences}

Write {count} different questions that a person who has not read this text might ask, each \
answered by one of its sentences. Each question must name what it asks about (not "it", "the \
country", "this person"), so that it makes sense without the text. Use your own words: do \
not copy the text's rare words or phrases. \
Reply with JSON only: \
{{"questions": [{{"question": "...", "sentence": number of the sentence that answers it}}]}}"""
MAX_QUESTION_CHARS = 200


class QuestionWriter(LLMJob):
    """Writes questions that passages answer, each labelled at the sentence it was written from.

    Args:
        client: The model (see :class:`~pruning_encoder.data.llm_client.ChatClient`).
        per_passage: Questions asked for each passage (the model may write fewer, at least 1).
        max_copied_words: Drop a question that shares this many consecutive words with the
            passage (case ignored); 0 keeps every question.
        retries: Further attempts after a failed one (an invalid reply, or no reply).
        retry_wait: Seconds before the first resend of an unanswered request; doubled each time.
        concurrency: Passages handled at once (threads).
        language: Of the sentence splitter: ``"auto"``, ``"en"``, ``"ja"`` or ``"zh"``.
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        per_passage: int = 3,
        max_copied_words: int = 6,
        retries: int = 2,
        retry_wait: float = 1.0,
        concurrency: int = 1,
        language: str = "auto",
    ) -> None:
        super().__init__(
            client,
            retries=retries,
            retry_wait=retry_wait,
            concurrency=concurrency,
            language=language,
        )
        if per_passage < 1 or max_copied_words < 0:
            raise ValueError("per_passage must be >= 1 and max_copied_words >= 0")
        self.per_passage = per_passage
        self.max_copied_words = max_copied_words

    def write(
        self, passages: Sequence[dict[str, Any]], *, show_progress_bar: bool = False
    ) -> Iterator[Outcome]:
        """Questions for each passage (``{"context": str, "title": str (optional), ...}``), in
        input order.

        Yields:
            One :class:`Outcome` per passage: its questions in ``outputs``; in ``failures`` the
            reason it gave none, or a dropped question (``{"reason", "question"}``).

        Raises:
            LLMSetupError: The endpoint refuses the job (wrong URL, API key or model name).
        """
        return self._run(passages, self.write_one, show_progress_bar, "write-questions")

    def write_one(self, passage: dict[str, Any], index: int = 0) -> Outcome:
        """Questions for one passage; see :meth:`write`."""
        outcome = Outcome(index)
        try:
            context, title = self._parse_passage(passage)
        except (ValueError, TypeError) as error:
            outcome.failures.append({"reason": f"invalid input: {error}"})
            return outcome
        spans = split_sentences(context, self.language)
        sentences = [context[start:end] for start, end in spans]
        prompt = QUESTION_PROMPT.format(
            title=f"Title: {title}\n\n" if title else "",
            sentences=numbered(sentences),
            count=self.per_passage,
        )
        messages = [
            {"role": "system", "content": QUESTION_SYSTEM},
            {"role": "user", "content": prompt},
        ]
        try:
            written = ask(
                self.client,
                messages,
                question_schema(len(sentences), self.per_passage),
                "questions",
                lambda reply: check_question_reply(reply, len(sentences)),
                retries=self.retries,
                retry_wait=self.retry_wait,
            )
        except JobFailed as error:
            outcome.failures.append({"reason": str(error)})
            return outcome
        seen: set[str] = set()
        for question, number in written:
            copied = copied_words(question, context, self.max_copied_words)
            key = " ".join(question.casefold().split())
            if copied or key in seen:
                reason = f"copies {copied!r} from the passage" if copied else "a repeat"
                outcome.failures.append({"reason": reason, "question": question})
                continue
            seen.add(key)
            start, end = spans[number - 1]
            outcome.outputs.append(
                {
                    **passage,
                    "question": question,
                    "context": context,
                    "source_sentence": number,
                    "source_span": [start, end],
                }
            )
        return outcome

    def _parse_passage(self, passage: Any) -> tuple[str, str | None]:
        if not isinstance(passage, dict):
            raise TypeError(f"expected an object with 'context', got {passage!r:.60}")
        if "context" not in passage:
            raise ValueError("missing field 'context'")
        context = check_text(passage["context"], "field 'context'")
        if not split_sentences(context, self.language):
            raise ValueError("field 'context' has no sentences")
        title = passage.get("title")
        if title is not None:
            check_text(title, "field 'title'")
        return context, title or None


def question_schema(count: int, per_passage: int) -> dict[str, Any]:
    """The JSON schema of a question-writing reply for ``count`` numbered sentences."""
    question = {
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 1, "maxLength": MAX_QUESTION_CHARS},
            "sentence": {"type": "integer", "minimum": 1, "maximum": count},
        },
        "required": ["question", "sentence"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "questions": {
                "type": "array",
                "items": question,
                "minItems": 1,
                "maxItems": per_passage,
            }
        },
        "required": ["questions"],
        "additionalProperties": False,
    }


def check_question_reply(reply: dict[str, Any], count: int) -> list[tuple[str, int]]:
    """The ``(question, sentence number)`` pairs of a question-writing reply.

    Raises:
        InvalidReply: ``questions`` is not a non-empty list of objects with a non-empty
            ``question`` string and a ``sentence`` number in 1..``count``.
    """
    questions = reply.get("questions")
    if not isinstance(questions, list) or not questions:
        raise InvalidReply(f"'questions' must be a non-empty list, got {questions!r:.120}")
    pairs = []
    for i, entry in enumerate(questions):
        where = f"questions[{i}]"
        if not isinstance(entry, dict):
            raise InvalidReply(f"{where} must be an object, got {entry!r:.80}")
        question = entry.get("question")
        if not isinstance(question, str) or not question.strip():
            raise InvalidReply(f"{where}.question must be a non-empty string")
        number = sentence_number(entry.get("sentence"), count, f"{where}.sentence")
        pairs.append((" ".join(question.split()), number))
    return pairs


def copied_words(question: str, passage: str, run: int) -> str | None:
    """The first run of ``run`` consecutive words of ``question`` that also occurs in
    ``passage`` (words: ``\\w+``, case ignored), or None; ``run=0`` finds none."""
    if run <= 0:
        return None
    asked = re.findall(r"\w+", question.casefold())
    words = re.findall(r"\w+", passage.casefold())
    runs = {tuple(words[i : i + run]) for i in range(len(words) - run + 1)}
    for i in range(len(asked) - run + 1):
        if tuple(asked[i : i + run]) in runs:
            return " ".join(asked[i : i + run])
    return None
