"""Questions shaped like human single-hop questions, generated from a Wikipedia summary.

People asking about an entity name the entity and the attribute they want ("What is the
population of Germany?", "Who founded Yale University?", "When was the Eiffel Tower built?");
they do not copy the rare words of the sentence that answers them. Each rule below pairs a cue
of a summary sentence (a word such as *population*, *capital*, *founded*) with questions that
name only the entity and that attribute; the sentences holding the cue are the relevant ones.
The questions of FanOutQA's dev split (Zhu et al., 2024) are of this kind; the rules were
written from the attributes such questions ask for, not from its validation questions.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

__all__ = ["Question", "entity_name", "questions_for"]


@dataclass(frozen=True)
class Rule:
    name: str
    cue: re.Pattern[str]
    templates: tuple[str, ...]
    people: bool | None = None  # True: only about people; False: never about people


def _rule(name: str, cue: str, *templates: str, people: bool | None = None) -> Rule:
    return Rule(name, re.compile(cue, re.IGNORECASE), templates, people)


RULES = (
    _rule("born", r"\bborn\b", "When was {e} born?", "In which year was {e} born?",
          "Where was {e} born?", "What is the birthplace of {e}?", people=True),
    _rule("died", r"\b(died|death|killed|assassinated)\b", "When did {e} die?",
          "How did {e} die?", "In what year did {e} die?", people=True),
    _rule("education", r"\b(studied|attended|graduated|educated|university)\b",
          "Where did {e} study?", "What university did {e} attend?", people=True),
    _rule("spouse", r"\b(married|wife|husband|spouse)\b", "Who was {e} married to?",
          "Who is the spouse of {e}?", people=True),
    _rule("office", r"\b(president|prime minister|king|queen|emperor|ruled|reign|served as|"
          r"governor|senator|minister|chancellor|pope)\b",
          "What position did {e} hold?", "What office did {e} hold?", people=True),
    _rule("award", r"\b(won|awarded|prize|award|medal|honou?rs?)\b",
          "What awards did {e} win?", "Did {e} win a Nobel Prize?", "What prize did {e} receive?"),
    _rule("known", r"\b(known for|famous for|best known|renowned|noted for|remembered)\b",
          "What is {e} known for?", "What is {e} famous for?", "Why is {e} famous?"),
    _rule("works", r"\b(wrote|written|author of|novels?|books?|poems?|plays)\b",
          "What did {e} write?", "What are the best-known works of {e}?", people=True),
    _rule("occupation", r"\bwas an? \w+", "What was the profession of {e}?",
          "What nationality was {e}?", "What was {e}'s occupation?", people=True),
    _rule("capital", r"\bcapital\b", "What is the capital of {e}?",
          "Which city is the capital of {e}?", people=False),
    _rule("population", r"\b(population|inhabitants|residents|people live)\b",
          "What is the population of {e}?", "How many people live in {e}?", people=False),
    _rule("largest", r"\b(largest|biggest|most populous|second-largest)\b",
          "What is the largest city of {e}?", "How large is {e}?", people=False),
    _rule("location", r"\b(located|situated|lies|border(s|ed)?|coast|north|south|east|west)\b",
          "Where is {e} located?", "Which countries border {e}?", "Where is {e}?", people=False),
    _rule("area", r"\b(km2|km²|square (kilo)?met|sq mi|square miles|hectares|acres|area of)\b",
          "What is the area of {e}?", "How big is {e}?", people=False),
    _rule("language", r"\b(language|spoken|dialects?)\b", "What language is spoken in {e}?",
          "What is the official language of {e}?", people=False),
    _rule("currency", r"\bcurrency\b", "What is the currency of {e}?", people=False),
    _rule("government", r"\b(republic|monarchy|parliamentary|federal|government|democracy)\b",
          "What type of government does {e} have?", "Is {e} a monarchy?",
          "Who is the current leader of {e}?", people=False),
    _rule("economy", r"\b(gdp|economy|economic|industry|exports?|tourism)\b",
          "What is the GDP of {e}?", "What is the economy of {e} based on?", people=False),
    _rule("founded", r"\b(founded|established|formed|created|incorporated)\b",
          "When was {e} founded?", "Who founded {e}?", "In which year was {e} established?",
          people=False),
    _rule("headquarters", r"\b(headquarter(s|ed)|based in)\b", "Where is {e} headquartered?",
          "Where are the headquarters of {e}?", people=False),
    _rule("creator", r"\b(written by|directed by|composed by|painted by|designed by|"
          r"created by|developed by|invented by|discovered by)\b",
          "Who created {e}?", "Who wrote {e}?", "Who invented {e}?", "Who designed {e}?",
          people=False),
    _rule("discovery", r"\b(discovered|invented|first described|identified)\b",
          "When was {e} discovered?", "Who discovered {e}?", "When was {e} invented?",
          people=False),
    _rule("built", r"\b(built|constructed|completed|opened|erected)\b", "When was {e} built?",
          "When did {e} open?", "Who built {e}?", people=False),
    _rule("event", r"\b(took place|fought|occurred|began|lasted|ended|started)\b",
          "When did {e} take place?", "When did {e} end?", "How long did {e} last?",
          "Who won {e}?", people=False),
    _rule("released", r"\b(released|published|premiered|debuted)\b", "When was {e} released?",
          "When was {e} first published?", people=False),
    _rule("members", r"\b(members?|member states|consists of|comprises)\b",
          "Who are the members of {e}?", "How many members does {e} have?", people=False),
    _rule("named", r"\b(named after|named for|derives? from|name comes)\b",
          "Who is {e} named after?", "Where does the name {e} come from?", people=False),
    _rule("measure", r"\b(elevation|height|tall|long|length|deep|depth|metres|meters|feet)\b",
          "How tall is {e}?", "How long is {e}?", "What is the elevation of {e}?",
          people=False),
    _rule("river", r"\b(river|flows|tributary|drains)\b", "Where does {e} flow?",
          "What is the source of {e}?", "Which river flows through {e}?", people=False),
    _rule("made", r"\b(made of|made from|composed of|consists|contains|compound)\b",
          "What is {e} made of?", "What does {e} contain?", people=False),
    _rule("use", r"\bused (to|for|in|as)\b", "What is {e} used for?", "How is {e} used?",
          people=False),
    _rule("classification", r"\b(species|genus|family|order|class|type of|kind of)\b",
          "What kind of thing is {e}?", "What family does {e} belong to?", people=False),
    _rule("religion", r"\b(religion|religious|christian|muslim|islam|buddhis|hindu|catholic|"
          r"church|god)\b", "What is the main religion of {e}?", "What does {e} believe in?"),
    _rule("date", r"\b(1[0-9]{3}|20[0-2][0-9])\b", "When did {e} happen?",
          "In which year did {e} begin?", people=False),
)  # fmt: skip
OVERVIEW_PEOPLE = ("Who was {e}?", "Who is {e}?", "What did {e} do?")
OVERVIEW_OTHER = ("What is {e}?", "What is {e} about?", "Tell me about {e}.")


@dataclass(frozen=True)
class Question:
    """A generated question, the rule that made it and the relevant sentence indexes."""

    text: str
    kind: str
    sentences: tuple[int, ...]


def entity_name(title: str) -> str:
    """How a person names an article's entity: its title without a trailing qualifier.

    ``"Mercury (planet)"`` → ``"Mercury"``; ``"Salvador, Bahia"`` → ``"Salvador"``.
    """
    name = re.sub(r"\s*\([^)]*\)$", "", title).strip()
    if ", " in name and not name.startswith(("The ", "the ")):
        name = name.split(", ")[0]
    return name or title


def questions_for(
    title: str, sentences: list[str], *, person: bool, count: int, rng: random.Random
) -> list[Question]:
    """Up to ``count`` questions about one article, each from a different rule.

    Args:
        title: The article title (its entity is named in the question).
        sentences: The article's sentences, in order.
        person: Whether the article is about a person (some rules apply to people only).
        count: The most questions to return.
        rng: Chooses rules, templates and (rarely) the overview question.

    Returns:
        Questions whose ``sentences`` are the indexes of the sentences holding the rule's cue
        (an overview question: the first sentence). Sentences that name the entity's defining
        attribute anywhere (the first sentence) are cues like any other.
    """
    name = entity_name(title)
    matches: list[tuple[Rule, tuple[int, ...]]] = []
    for rule in RULES:
        if rule.people is not None and rule.people != person:
            continue
        hits = tuple(i for i, s in enumerate(sentences) if rule.cue.search(s))
        # A cue in most sentences says nothing about which one answers.
        if hits and len(hits) <= max(1, len(sentences) // 2):
            matches.append((rule, hits))
    rng.shuffle(matches)
    questions = [
        Question(rng.choice(rule.templates).format(e=name), rule.name, hits)
        for rule, hits in matches[:count]
    ]
    if len(questions) < count and rng.random() < 0.5:
        overview = OVERVIEW_PEOPLE if person else OVERVIEW_OTHER
        questions.append(Question(rng.choice(overview).format(e=name), "overview", (0,)))
    return questions
