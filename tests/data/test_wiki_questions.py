"""Human-shaped questions from a summary: the entity and the attribute, labelled at the cue."""

from __future__ import annotations

import random

import pytest

from pruning_encoder.data.wiki_questions import RULES, entity_name, questions_for

LAGOS = [
    "Lagos is the largest city in Nigeria.",
    "It has a population of about 15 million residents.",
    "The city was founded by Awori fishermen in the 15th century.",
    "Lagos lies on the Atlantic coast of West Africa.",
]
CURIE = [
    "Marie Curie was a Polish and naturalised-French physicist and chemist.",
    "She was the first woman to win a Nobel Prize.",
    "She married the physicist Pierre Curie in 1895.",
]


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("Mercury (planet)", "Mercury"),
        ("Salvador, Bahia", "Salvador"),
        ("The Hague, Netherlands", "The Hague, Netherlands"),
        ("Eiffel Tower", "Eiffel Tower"),
    ],
)
def test_entity_name_drops_a_trailing_qualifier(title: str, name: str) -> None:
    assert entity_name(title) == name


def test_questions_name_the_entity_and_point_at_the_cue_sentences() -> None:
    rules = {rule.name: rule for rule in RULES}
    for seed in range(20):
        for question in questions_for(
            "Lagos", LAGOS, person=False, count=3, rng=random.Random(seed)
        ):
            assert "Lagos" in question.text
            assert question.text.endswith(("?", "."))
            if question.kind == "overview":
                assert question.sentences == (0,)
                continue
            cue = rules[question.kind].cue
            assert question.sentences == tuple(
                i for i, sentence in enumerate(LAGOS) if cue.search(sentence)
            )
            # The question does not copy the answer sentences' rare words.
            assert not {"Awori", "fishermen", "Atlantic", "15"} & set(question.text.split())


def test_population_and_founding_questions_are_asked_of_a_city() -> None:
    kinds = set()
    for seed in range(30):
        questions = questions_for("Lagos", LAGOS, person=False, count=3, rng=random.Random(seed))
        assert len({q.kind for q in questions}) == len(questions)  # one question per rule
        kinds |= {q.kind for q in questions}
    assert {"population", "founded", "largest"} <= kinds
    assert not kinds & {"born", "spouse", "education"}  # rules about people only


def test_rules_about_people_apply_to_people_only() -> None:
    kinds = set()
    for seed in range(30):
        questions = questions_for(
            "Marie Curie", CURIE, person=True, count=3, rng=random.Random(seed)
        )
        kinds |= {q.kind for q in questions}
    assert "spouse" in kinds
    assert not kinds & {"capital", "population", "founded"}


def test_a_cue_in_most_sentences_makes_no_question() -> None:
    everywhere = ["Paris has a population.", "Its population grows.", "The population is old."]
    for seed in range(10):
        kinds = {
            q.kind
            for q in questions_for(
                "Paris", everywhere, person=False, count=3, rng=random.Random(seed)
            )
        }
        assert "population" not in kinds
