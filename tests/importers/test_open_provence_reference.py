"""An imported OpenProvence model prunes as OpenProvence's own ``process()`` does.

``data/open_provence/reference.json`` holds numbers computed once, outside this project, by
OpenProvence's own modeling file (``modeling_open_provence_standalone.py`` at the
hotchpotch/open_provence mirror's HEAD, transformers 4.57.1) on the checkpoint that
:func:`write_reference_checkpoint` writes: a tiny ModernBERT with seeded weights and the
byte-level BPE tokenizer stored beside the numbers. Its ``process()`` was given this package's
sentences, each with its trailing whitespace (the way its own splitter cuts), so that only the
tokenization differs: it tokenizes each sentence on its own and concatenates the ids, which our
import reproduces with ``context_tokenization="per_sentence"``. None of its code is here.

To compute the numbers again: write the checkpoint with :func:`write_reference_checkpoint`, cut
each context with :func:`~pruning_encoder.windows.sentence_pieces`, then run OpenProvence's
``OpenProvenceModel.from_pretrained(folder).process(question, [pieces], title=None,
threshold=..., return_sentence_metrics=True)`` for each question and context.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from published_formats import open_provence_config
from safetensors.torch import save_file
from tiny_backbones import make_config
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerFast

from pruning_encoder import PruningEncoder, split_sentences
from pruning_encoder.windows import sentence_pieces, tokenize_contexts

DATA = Path(__file__).parents[1] / "fixtures" / "open_provence"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
SEED = 27


def write_reference_checkpoint(directory: Path) -> Path:
    """The OpenProvence-format checkpoint of the reference numbers: weights drawn from numpy's
    seeded generator (the same bits on every machine and torch version), the stored tokenizer."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(DATA)
    backbone = make_config("modernbert-bare", tokenizer)
    backbone.num_labels = 1
    shapes = AutoModelForSequenceClassification.from_config(backbone).state_dict()
    rng = np.random.default_rng(SEED)

    def draw(shape: tuple[int, ...], scale: float, mean: float = 0.0) -> torch.Tensor:
        return torch.from_numpy((mean + scale * rng.standard_normal(shape)).astype(np.float32))

    weights = {}
    for name, tensor in sorted(shapes.items()):
        is_norm = "norm" in name and name.endswith(".weight")
        weights[f"ranking_model.{name}"] = draw(
            tuple(tensor.shape), 0.1 if is_norm else 0.2, is_norm
        )
    hidden = backbone.hidden_size
    weights["pruning_head.classifier.weight"] = draw((2, hidden), 0.5)
    weights["pruning_head.classifier.bias"] = draw((2,), 0.1)
    save_file(weights, directory / "model.safetensors")
    config = open_provence_config(backbone, "tiny-modernbert-bpe")
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    for name in TOKENIZER_FILES:  # as stored: transformers 5 would rename the class on saving
        shutil.copyfile(DATA / name, directory / name)
    return directory


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return json.loads((DATA / "reference.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_reference_checkpoint(tmp_path_factory.mktemp("open-provence-bpe"))


def test_an_imported_byte_level_model_prunes_as_open_provence_does(
    checkpoint: Path, reference: dict[str, Any]
) -> None:
    model = PruningEncoder(checkpoint, device="cpu")
    assert model.config.context_tokenization == "per_sentence"
    threshold = reference["threshold"]
    for expected in reference["results"]:
        result = model.process(
            expected["question"],
            expected["context"],
            threshold=threshold,
            return_sentence_probabilities=True,
        )
        probabilities = expected["sentence_probabilities"]
        pieces = sentence_pieces(expected["context"], split_sentences(expected["context"]))
        assert "".join(pieces) == expected["context"] and len(pieces) == len(probabilities)
        assert result["sentence_probabilities"] == pytest.approx(probabilities, abs=1e-5)
        assert result["reranking_score"] == pytest.approx(expected["reranking_score"], abs=1e-5)
        # The same sentences kept; ours ends without the last kept sentence's trailing space.
        assert result["pruned_context"] == expected["pruned_context"].rstrip()


def test_whole_context_tokenization_stays_available_and_is_saved(
    checkpoint: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    model = PruningEncoder(checkpoint, device="cpu")
    model.config.context_tokenization = "whole"
    model.save_pretrained(tmp_path / "whole")
    reloaded = PruningEncoder(tmp_path / "whole", device="cpu")
    assert reloaded.config.context_tokenization == "whole"
    differences = [
        np.abs(
            np.array(
                reloaded.process(
                    expected["question"], expected["context"], return_sentence_probabilities=True
                )["sentence_probabilities"]
            )
            - expected["sentence_probabilities"]
        ).max()
        for expected in reference["results"]
    ]
    # What training's collator feeds the model, and not what OpenProvence's process() does.
    assert max(differences) > 0.1


def test_per_sentence_tokenization_gives_the_space_before_a_sentence_its_own_token() -> None:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(DATA)
    text = "Cats sleep. It is a city."
    spans = split_sentences(text)
    [(whole, _, _, _)] = tokenize_contexts(tokenizer, [text], [spans])
    [(apart, owner, counted, position)] = tokenize_contexts(
        tokenizer, [text], [spans], per_sentence=True
    )
    pieces = tokenizer.convert_ids_to_tokens(apart)
    assert pieces[pieces.index(".") : pieces.index(".") + 3] == [".", "Ġ", "It"]
    assert "ĠIt" in tokenizer.convert_ids_to_tokens(whole)
    assert owner.tolist() == [0] * (pieces.index(".") + 2) + [1] * (
        len(pieces) - pieces.index(".") - 2
    )
    assert counted.all()
    # Each token's character in the whole text; the lone "Ġ", the space after "Cats sleep.", is
    # placed within that sentence, which counts it.
    assert position[pieces.index("It")] == text.index("It") + 1
    assert position[pieces.index("Ġ")] == text.index(".")
