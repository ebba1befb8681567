"""Sentence labels from a language model: a question and a context in, a training record out.

The context is split with :func:`~pruning_encoder.split_sentences` and shown to the model as
numbered sentences; the model first writes a short answer, then the numbers of the sentences the
answer comes from (of two prompts measured on FanOutQA validation contexts with
Qwen2.5-Coder-1.5B, one of this kind put the answer inside the labels in 82% of them, against 56%
for asking for the numbers alone). The reply is JSON, constrained by a schema where the server
supports it, and validated: ``answer`` a string, ``sentences`` distinct integers 1..n. What can be
checked is recorded: whether the answer the model wrote occurs in the sentences it named
(``answer_in_labels``); ``require_answer_match`` makes a mismatch a failure.

Retries and failures are those of :mod:`~pruning_encoder.data.llm_jobs`: an item that gets no
valid reply becomes a failure with its reason; it is never dropped, and the job goes on.

Each labelled item is one training record (:mod:`pruning_encoder.data.records`): ``texts``
holds the context as one text (documents joined by newlines stay one text, as in the FanOutQA
benchmark's contexts), ``relevant_spans`` the character spans of the named sentences,
``labels`` 1.0 when the model named a sentence and 0.0 when it named none; ``id`` and
``answers`` of the input are carried; its other fields and the model's reply go to ``meta``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..checks import check_text
from ..sentence_splitter import Span, split_sentences
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

LABEL_SYSTEM = "You find the sentences of a text that answer a question."
LABEL_PROMPT = """\
Question: {question}

Numbered sentences:
{sentences}

First write the answer alone, in as few words as the sentences allow (a name, a date, a number \
or a short phrase), copied from them. Then list the numbers of the sentences the answer comes \
from. If no sentence answers the question, write an empty answer and an empty list. Reply with \
JSON only: {{"answer": "...", "sentences": [numbers]}}"""
MAX_ANSWER_CHARS = 100
# Around an answer, what the check ignores: "1793." occurs in "opened in 1793, ...".
ANSWER_EDGES = " \t\n.,;:!?\"'()[]"
# The input fields that become fields of the training record; the others go to meta["input"].
RECORD_FIELDS = ("question", "context", "id", "answers")


class LLMLabeller(LLMJob):
    """Labels the sentences of contexts that answer their questions, with a chat model.

    Args:
        client: The model (see :class:`~pruning_encoder.data.llm_client.ChatClient`).
        retries: Further attempts after a failed one (an invalid reply, or no reply).
        retry_wait: Seconds before the first resend of an unanswered request; doubled each time.
        require_answer_match: Fail an item (after retries) whose answer does not occur in the
            sentences the model named.
        concurrency: Items labelled at once (threads; each waits on its request).
        language: Of the sentence splitter: ``"auto"``, ``"en"``, ``"ja"`` or ``"zh"``.

    Example:
        >>> with ChatClient("http://localhost:8080/v1", model="qwen") as client:  # doctest: +SKIP
        ...     for outcome in LLMLabeller(client).label([{"question": q, "context": c}]):
        ...         print(outcome.outputs or outcome.failures)
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        retries: int = 2,
        retry_wait: float = 1.0,
        require_answer_match: bool = False,
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
        self.require_answer_match = require_answer_match

    def label(
        self, items: Sequence[dict[str, Any]], *, show_progress_bar: bool = False
    ) -> Iterator[Outcome]:
        """Label each item (``{"question": str, "context": str, ...}``), in input order.

        Yields:
            One :class:`Outcome` per item: one training record in ``outputs``, or the reason
            in ``failures`` (an invalid item, or no valid reply within the retries).

        Raises:
            LLMSetupError: The endpoint refuses the job (wrong URL, API key or model name).
        """
        return self._run(items, self.label_one, show_progress_bar, "label")

    def label_one(self, item: dict[str, Any], index: int = 0) -> Outcome:
        """Label one item; see :meth:`label`."""
        outcome = Outcome(index)
        try:
            question, context, spans = self._parse_item(item)
        except (ValueError, TypeError) as error:
            outcome.failures.append({"reason": f"invalid input: {error}"})
            return outcome
        sentences = [context[start:end] for start, end in spans]
        messages = [
            {"role": "system", "content": LABEL_SYSTEM},
            {
                "role": "user",
                "content": LABEL_PROMPT.format(question=question, sentences=numbered(sentences)),
            },
        ]

        def check(reply: Any) -> tuple[str, list[int], bool | None]:
            answer, chosen = check_label_reply(reply, len(sentences))
            found = answer_in_labels(answer, [sentences[n - 1] for n in chosen])
            if self.require_answer_match and found is False:
                named = ", ".join(map(str, chosen)) or "none"
                raise InvalidReply(
                    f"the answer {answer!r} does not occur in the sentences named ({named}); "
                    "name the sentences that hold the answer"
                )
            return answer, chosen, found

        try:
            answer, chosen, found = ask(
                self.client,
                messages,
                label_schema(len(sentences)),
                "sentence_labels",
                check,
                retries=self.retries,
                retry_wait=self.retry_wait,
            )
        except JobFailed as error:
            outcome.failures.append({"reason": str(error)})
            return outcome
        outcome.outputs.append(
            self._record(item, question, context, [spans[n - 1] for n in chosen], answer, found)
        )
        return outcome

    def _parse_item(self, item: Any) -> tuple[str, str, list[Span]]:
        if not isinstance(item, dict):
            raise TypeError(f"expected an object with 'question' and 'context', got {item!r:.60}")
        for name in ("question", "context"):
            if name not in item:
                raise ValueError(f"missing field {name!r}")
            check_text(item[name], f"field {name!r}")
        if not item["question"].strip():
            raise ValueError("field 'question' is empty")
        spans = split_sentences(item["context"], self.language)
        if not spans:
            raise ValueError("field 'context' has no sentences")
        answers = item.get("answers", [])
        if not isinstance(answers, list) or not all(isinstance(a, str) and a for a in answers):
            raise ValueError("field 'answers' must be a list of non-empty strings")
        return item["question"], item["context"], spans

    def _record(
        self,
        item: dict[str, Any],
        question: str,
        context: str,
        spans: list[Span],
        answer: str,
        found: bool | None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "query": question,
            "texts": [context],
            "labels": [1.0 if spans else 0.0],
            "relevant_spans": [[list(span) for span in spans]],
        }
        if item.get("answers"):
            record["answers"] = item["answers"]
        if "id" in item:
            record["id"] = item["id"]
        extra = {key: value for key, value in item.items() if key not in RECORD_FIELDS}
        record["meta"] = {
            "llm": {"model": self.client.model, "answer": answer, "answer_in_labels": found},
            **({"input": extra} if extra else {}),
        }
        return record


def label_schema(count: int) -> dict[str, Any]:
    """The JSON schema of a labelling reply for ``count`` numbered sentences."""
    return {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "maxLength": MAX_ANSWER_CHARS},
            "sentences": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": count},
                "maxItems": count,
            },
        },
        "required": ["answer", "sentences"],
        "additionalProperties": False,
    }


def check_label_reply(reply: dict[str, Any], count: int) -> tuple[str, list[int]]:
    """The answer and the sorted sentence numbers of a labelling reply.

    Raises:
        InvalidReply: ``answer`` is not a string, ``sentences`` not a list of distinct
            integers in 1..``count``.
    """
    answer, chosen = reply.get("answer"), reply.get("sentences")
    if not isinstance(answer, str):
        raise InvalidReply(f"'answer' must be a string, got {answer!r}")
    if not isinstance(chosen, list):
        raise InvalidReply(f"'sentences' must be a list of sentence numbers, got {chosen!r}")
    numbers = [sentence_number(n, count, "each sentence number") for n in chosen]
    if len(set(numbers)) != len(numbers):
        raise InvalidReply(f"'sentences' names a sentence twice: {numbers}")
    return answer.strip(), sorted(numbers)


def answer_in_labels(answer: str, sentences: Iterable[str]) -> bool | None:
    """Whether ``answer`` occurs in ``sentences`` (case, runs of whitespace and the punctuation
    around the answer ignored); None when there is nothing to check (no answer, no sentence);
    False for an answer without sentences or sentences without an answer."""
    sentences = list(sentences)
    needle = _normal(answer).strip(ANSWER_EDGES)
    if not needle and not sentences:
        return None
    return bool(needle) and needle in _normal(" ".join(sentences))


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())
