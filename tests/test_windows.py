"""Windows: the training collator feeds the model the inputs ``process()`` runs it on, token for
token, with token labels that line up with the sentences."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_backbones import make_backbone

from pruning_encoder import PruningEncoder
from pruning_encoder.sentence_splitter import split_sentences
from pruning_encoder.training.data_collator import PruningDataCollator
from pruning_encoder.windows import Template, build_windows

WINDOW = 32
QUESTION = "where is the cat?"
RELEVANT = "The cat is in Paris."
# Several windows of WINDOW tokens with any of the tiny tokenizers.
LONG = f"{RELEVANT} " + " ".join(f"Dogs bark at night in France number {i}." for i in range(8))
# (question, text, title): a long text, a title, an empty text, a whitespace-only one.
PAIRS = [
    (QUESTION, LONG, None),
    (QUESTION, LONG, "Cats of Paris"),
    (QUESTION, "", None),
    (QUESTION, " \n ", "Cats"),
    ("who wrote hamlet?", "Shakespeare wrote Hamlet in 1600. Cats sleep.", None),
]
# Byte-level BPE (ids differ per sentence), SentencePiece (a lone "▁" for whitespace), WordPiece.
KINDS = ("bert", "roberta", "xlm-roberta")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PruningEncoder]:
    root = tmp_path_factory.mktemp("window-backbones")
    built = {}
    for kind in KINDS:
        torch.manual_seed(0)
        built[kind] = PruningEncoder(make_backbone(kind, root / kind), max_length=WINDOW)
    return built


def inference_windows(
    model: PruningEncoder,
    monkeypatch: pytest.MonkeyPatch,
    question: str,
    text: str,
    title: str | None,
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input_ids, token_type_ids) of each window ``process()`` runs the model on, padding cut."""
    seen = []
    heads = model.model._heads

    def spy(**inputs: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        seen.extend(rows(inputs))
        return heads(**inputs)

    monkeypatch.setattr(model.model, "_heads", spy)
    model.process(question, text, title=title)
    monkeypatch.undo()
    return seen


def rows(batch: dict[str, torch.Tensor]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    types = batch.get("token_type_ids", torch.zeros_like(batch["input_ids"]))
    return [
        (tuple(ids[mask == 1].tolist()), tuple(kinds[mask == 1].tolist()))
        for ids, kinds, mask in zip(batch["input_ids"], types, batch["attention_mask"], strict=True)
    ]


def feature(question: str, text: str, title: str | None, relevant: list[tuple[int, int]]) -> dict:
    return {
        "query": question,
        "text": text,
        "title": title,
        "relevant_spans": relevant,
        "label": 1.0 if relevant else 0.0,
        "score": None,
    }


@pytest.mark.parametrize("tokenization", ["whole", "per_sentence"])
@pytest.mark.parametrize("kind", KINDS)
def test_training_windows_are_the_inference_windows_token_for_token(
    kind: str,
    tokenization: str,
    models: dict[str, PruningEncoder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = models[kind]
    model.model.config.context_tokenization = tokenization
    collator = PruningDataCollator(model.tokenizer, WINDOW, context_tokenization=tokenization)
    for question, text, title in PAIRS:
        trained = rows(collator([feature(question, text, title, [])]))
        run = inference_windows(model, monkeypatch, question, text, title)
        # process() runs a pair's windows longest first; the collator keeps them in order.
        assert sorted(trained) == sorted(run), (kind, text[:20], title)
        if text == LONG:
            assert len(trained) > 2
        if not text.strip():  # the empty document: the question (and title) alone
            [(ids, _)] = trained
            tokenizer = model.tokenizer
            alone = len(tokenizer(question, add_special_tokens=False)["input_ids"])
            alone += len(tokenizer(title or "", add_special_tokens=False)["input_ids"])
            assert len(ids) == Template.of(tokenizer).num_special + alone


@pytest.mark.parametrize("kind", KINDS)
def test_a_question_too_long_is_refused_alike_in_training_and_at_inference(
    kind: str, models: dict[str, PruningEncoder]
) -> None:
    model = models[kind]
    question = "where is the cat? " * 10
    collator = PruningDataCollator(model.tokenizer, WINDOW)
    for run in (
        lambda: model.process(question, LONG),
        lambda: collator([feature(question, LONG, None, [])]),
    ):
        with pytest.raises(ValueError, match=r"take \d+ tokens, leaving too little of max_length"):
            run()
    # The limit counts the title too: a question that fits alone does not with a long title.
    fits = "where is the cat?"
    title = "Cats of Paris " * 8
    with pytest.raises(ValueError, match="too little of max_length"):
        collator([feature(fits, LONG, title, [])])
    with pytest.raises(ValueError, match="too little of max_length"):
        model.process(fits, LONG, title=title)


@pytest.mark.parametrize("tokenization", ["whole", "per_sentence"])
@pytest.mark.parametrize("kind", KINDS)
def test_token_labels_line_up_with_the_sentences(
    kind: str, tokenization: str, models: dict[str, PruningEncoder]
) -> None:
    tokenizer = models[kind].tokenizer
    template = Template.of(tokenizer)
    spans = split_sentences(LONG)
    relevant = [spans[0], spans[3]]
    collator = PruningDataCollator(tokenizer, WINDOW, context_tokenization=tokenization)
    batch = collator([feature(QUESTION, LONG, "Cats", relevant)])
    windows = build_windows(
        tokenizer,
        template,
        [QUESTION],
        [LONG],
        [spans],
        ["Cats"],
        max_length=WINDOW,
        per_sentence=tokenization == "per_sentence",
    )
    assert len(windows) == len(batch["input_ids"]) > 2
    for window, labels, mask in zip(
        windows, batch["pruning_labels"].tolist(), batch["attention_mask"].tolist(), strict=True
    ):
        start = len(template.prefix) + len(window.question_ids) + len(template.middle)
        start += len(window.title_ids)
        end = start + len(window.context_ids)
        # Special tokens, the question, the title and padding are ignored.
        assert set(labels[:start]) == {-100}
        assert set(labels[end:]) == {-100}
        assert sum(mask) == end + len(template.suffix)
        # A token is 1 exactly when it lies in a relevant sentence (a stray token between
        # sentences, which no sentence counts, is 0).
        expected = [
            int(sentence in (0, 3)) if sentence >= 0 else 0
            for sentence in window.sentence_of_token.tolist()
        ]
        assert labels[start:end] == expected
    assert batch["labels"][0].item() == 1.0  # the first window holds sentence 0


def test_collator_refuses_an_unknown_context_tokenization(
    models: dict[str, PruningEncoder],
) -> None:
    with pytest.raises(ValueError, match="Unknown context_tokenization 'sentences'"):
        PruningDataCollator(models["bert"].tokenizer, WINDOW, context_tokenization="sentences")


def test_trainer_collates_as_the_model_tokenizes(
    models: dict[str, PruningEncoder], tmp_path: Path
) -> None:
    from pruning_encoder.training.trainer import PruningEncoderTrainer
    from pruning_encoder.training.training_args import PruningEncoderTrainingArguments

    model = models["roberta"]
    model.model.config.context_tokenization = "per_sentence"
    args = PruningEncoderTrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    trainer = PruningEncoderTrainer(model, args)
    assert trainer.data_collator.context_tokenization == "per_sentence"  # type: ignore[attr-defined]
    assert trainer.data_collator.max_length == WINDOW  # type: ignore[attr-defined]
