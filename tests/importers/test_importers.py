"""Published Provence-family checkpoints, imported without their code: logits equal a reference
forward pass written from each format's description, ``process()`` applies the reference decision
rule, and the converted model saves and reloads through every loading path."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from published_formats import FAMILIES, TRAP_MARK, reference, write_checkpoint
from safetensors.torch import load_file, save_file
from transformers import AutoModel, pipeline

from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main
from pruning_encoder.importers import ImportFormatError, import_checkpoint, imported_family

QUESTION = "where is the cat?"
SENTENCES = [
    "The cat is in Paris.",
    "The dog was in France.",
    "It is a city.",
    "Cats sleep most of the day.",
]
EXPECTED = {
    # family: (detected name, score activation, default threshold, window)
    "provence": ("naver Provence", "identity", 0.1, 512),
    "xprovence": ("naver XProvence", "identity", 0.3, 512),
    "open_provence": ("OpenProvence", "sigmoid", 0.3, 128),
    "zilliz": ("OpenProvence", "sigmoid", 0.3, 128),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published")
    return {family: write_checkpoint(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def imported(checkpoints: dict[str, Path]) -> dict[str, PruningEncoder]:
    return {family: PruningEncoder(path, device="cpu") for family, path in checkpoints.items()}


def _assert_same(result: dict, expected: dict) -> None:
    """Same kept text and spans; scores and probabilities equal up to float rounding."""
    assert result["kept_spans"] == expected["kept_spans"]
    assert result["pruned_context"] == expected["pruned_context"]
    assert result["reranking_score"] == pytest.approx(expected["reranking_score"], abs=1e-6)
    probabilities = expected.get("sentence_probabilities")
    assert result.get("sentence_probabilities") == pytest.approx(probabilities, abs=1e-6)


def _score(family: str, logit: torch.Tensor) -> torch.Tensor:
    return logit if EXPECTED[family][1] == "identity" else torch.sigmoid(logit)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_format_is_recognised_with_its_settings(
    family: str, checkpoints: dict[str, Path], imported: dict[str, PruningEncoder]
) -> None:
    name, activation, threshold, window = EXPECTED[family]
    assert imported_family(str(checkpoints[family])) == name
    config = imported[family].config
    assert config.ranking_activation == activation
    assert config.default_threshold == pytest.approx(threshold)
    assert config.max_seq_length == window
    assert config.zero_score_when_empty == (activation == "sigmoid")
    # OpenProvence's own process() tokenizes sentence by sentence; on its byte-level BPE
    # tokenizer that differs from one call (tests/test_open_provence_reference.py).
    per_sentence = family == "open_provence"
    assert config.context_tokenization == ("per_sentence" if per_sentence else "whole")


@pytest.mark.parametrize("family", FAMILIES)
def test_converted_logits_equal_the_reference(
    family: str, checkpoints: dict[str, Path], imported: dict[str, PruningEncoder]
) -> None:
    model = imported[family]
    inputs = model.tokenizer(
        [QUESTION, "what is the capital of france?"],
        [" ".join(SENTENCES), "Paris is the capital of France."],
        padding=True,
        return_tensors="pt",
    )
    inputs.pop("token_type_ids", None)  # none of these backbones has token types
    with torch.inference_mode():
        output = model(**inputs)
        expected_logit, expected_keep = reference(family, checkpoints[family])(dict(inputs))
    torch.testing.assert_close(output.ranking_logits[:, 0], expected_logit, atol=1e-5, rtol=0)
    keep = torch.softmax(output.pruning_logits, -1)[..., 1]
    mask = inputs["attention_mask"].bool()
    torch.testing.assert_close(keep[mask], expected_keep[mask], atol=1e-5, rtol=0)


def test_a_tokenizer_without_special_tokens_gets_cls_and_sep(
    imported: dict[str, PruningEncoder],
) -> None:
    tokenizer = imported["open_provence"].tokenizer
    ids = tokenizer(QUESTION, SENTENCES[0])["input_ids"]
    bare = [
        tokenizer(text, add_special_tokens=False)["input_ids"] for text in (QUESTION, SENTENCES[0])
    ]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert ids == [cls, *bare[0], sep, *bare[1], sep]


def _reference_sentences(
    family: str, directory: Path, model: PruningEncoder
) -> tuple[float, np.ndarray]:
    """The reference score and the mean keep-probability of each sentence's tokens (a token is
    the sentence's that holds its last character: SentencePiece's ``▁The`` starts at the space
    before the word), for the context of SENTENCES joined by spaces, read in one window."""
    context = " ".join(SENTENCES)
    encoding = model.tokenizer(QUESTION, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = encoding.pop("offset_mapping")[0]
    sequence = encoding.sequence_ids(0)
    encoding.pop("token_type_ids", None)
    with torch.inference_mode():
        logit, keep = reference(family, directory)(dict(encoding))
    starts = np.cumsum([0] + [len(s) + 1 for s in SENTENCES])
    sums, counts = np.zeros(len(SENTENCES)), np.zeros(len(SENTENCES))
    for token, (start, end) in enumerate(offsets.tolist()):
        last = max(start, end - 1)
        sentence = int(np.searchsorted(starts, last, side="right") - 1)
        if sequence[token] != 1 or last >= starts[sentence] + len(SENTENCES[sentence]):
            continue  # a special token, or the space between two sentences
        sums[sentence] += float(keep[0, token])
        counts[sentence] += 1
    return float(_score(family, logit)[0]), sums / counts


@pytest.mark.parametrize("family", FAMILIES)
def test_process_applies_the_reference_decision_rule(
    family: str,
    checkpoints: dict[str, Path],
    imported: dict[str, PruningEncoder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = imported[family]
    # The reference below reads the context in one piece, which every import can still do.
    monkeypatch.setattr(model.config, "context_tokenization", "whole")
    score, probabilities = _reference_sentences(family, checkpoints[family], model)
    # A threshold between the sentences' probabilities, so that some are kept and some not.
    threshold = float(np.sort(probabilities)[1:3].mean())
    result = model.process(
        QUESTION,
        [SENTENCES],
        presplit=True,
        threshold=threshold,
        return_sentence_probabilities=True,
    )[0]
    assert result["reranking_score"] == pytest.approx(score, abs=1e-5)
    assert result["sentence_probabilities"] == pytest.approx(list(probabilities), abs=1e-5)
    kept = [s for s, p in zip(SENTENCES, probabilities, strict=True) if p > threshold]
    assert result["pruned_context"] == " ".join(kept)


def test_nothing_kept_scores_zero_where_the_format_says_so(
    imported: dict[str, PruningEncoder],
) -> None:
    open_provence = imported["open_provence"].process(QUESTION, " ".join(SENTENCES), threshold=1)
    assert open_provence["pruned_context"] == ""
    assert open_provence["reranking_score"] == 0.0
    provence = imported["provence"].process(QUESTION, " ".join(SENTENCES), threshold=1)
    assert provence["reranking_score"] != 0.0


@pytest.mark.parametrize("family", FAMILIES)
def test_the_converted_model_loads_through_every_path(
    family: str, imported: dict[str, PruningEncoder], tmp_path: Path
) -> None:
    from sentence_transformers import CrossEncoder

    model = imported[family]
    context = " ".join(SENTENCES)
    expected = model.process(QUESTION, context, return_sentence_probabilities=True)
    model.save_pretrained(tmp_path / "ours")
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["model_type"] == (
        "pruning_encoder"
    )
    reloaded = PruningEncoder.from_pretrained(tmp_path / "ours", device="cpu")
    _assert_same(reloaded.process(QUESTION, context, return_sentence_probabilities=True), expected)
    remote = AutoModel.from_pretrained(tmp_path / "ours", trust_remote_code=True)
    assert remote.process(QUESTION, context)["pruned_context"] == expected["pruned_context"]
    # The ranking model alone reports the family's own score: raw logit or sigmoid.
    score = float(model.predict((QUESTION, context)))
    assert score == pytest.approx(expected["reranking_score"], abs=1e-5)
    ranking_dir = str(tmp_path / "ours" / "ranking_model")
    cross_encoder = CrossEncoder(ranking_dir, device="cpu")
    assert float(cross_encoder.predict([(QUESTION, context)])[0]) == pytest.approx(score, abs=1e-4)
    classifier = pipeline("text-classification", model=ranking_dir, device="cpu")
    output = classifier({"text": QUESTION, "text_pair": context})
    assert output["score"] == pytest.approx(score, abs=1e-4)


@pytest.mark.slow
def test_convert_writes_our_layout_and_runs_no_checkpoint_code(
    checkpoints: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run_without_the_package: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    for family, path in checkpoints.items():
        destination = tmp_path / family
        assert main(["convert", str(path), str(destination)]) == 0
        assert f"{EXPECTED[family][0]} -> {destination}" in capsys.readouterr().out
        assert not list(destination.glob("modeling_*provence*.py"))
    # Every way this package read the checkpoints left their own code alone.
    assert not [p for p in checkpoints.values() if (p / TRAP_MARK).exists()]
    script = textwrap.dedent(
        f"""
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / "provence")!r}, trust_remote_code=True)
        print(model.config.ranking_activation, model.process("q", "A b. C d.")["pruned_context"])
        """
    )
    assert run_without_the_package(script).stdout.startswith("identity")


def test_the_model_card_keeps_the_published_licence(
    imported: dict[str, PruningEncoder], tmp_path: Path
) -> None:
    imported["provence"].save_pretrained(tmp_path / "provence", export_ranking_model=True)
    for card in ("README.md", "ranking_model_standalone/README.md"):
        text = (tmp_path / "provence" / card).read_text()
        assert "license: cc-by-nc-nd-4.0" in text
    text = (tmp_path / "provence" / "README.md").read_text()
    assert "Imported from the naver Provence checkpoint" in text
    imported["zilliz"].save_pretrained(tmp_path / "zilliz")  # its card states no licence
    text = (tmp_path / "zilliz" / "README.md").read_text()
    assert "licence as published: none stated" in text and "apache" not in text


def test_an_unknown_format_names_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "mystery", "architectures": ["Odd"]}')
    with pytest.raises(
        ImportFormatError, match=r"model_type 'mystery' and architectures \['Odd'\]"
    ):
        import_checkpoint(str(tmp_path))
    with pytest.raises(ValueError, match=r"holds a 'mystery' model \(architectures \['Odd'\]\)"):
        PruningEncoder.from_pretrained(tmp_path)
    assert main(["convert", str(tmp_path), str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("family", "dropped", "named"),
    [
        ("provence", "token_classifier.", "token_classifier.weight, token_classifier.bias"),
        ("xprovence", "roberta.pooler.", "roberta.pooler.dense.weight, roberta.pooler.dense.bias"),
        ("open_provence", "pruning_head.", "pruning_head.classifier.weight"),
        ("zilliz", "ranking_model.classifier.out_proj.", "classifier.out_proj.weight"),
    ],
)
def test_a_missing_weight_is_named(
    family: str, dropped: str, named: str, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    directory = write_checkpoint(family, tmp_path / family)
    weights = load_file(directory / "model.safetensors")
    kept = {k: v for k, v in weights.items() if not k.startswith(dropped)}
    save_file(kept, directory / "model.safetensors")
    with pytest.raises(ImportFormatError, match=named):
        PruningEncoder(directory, device="cpu")


def test_a_truncated_checkpoint_is_an_os_error_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write_checkpoint("open_provence", tmp_path / "cut")
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(OSError, match=f"Could not read the weights {weights}: .*incomplete"):
        PruningEncoder(directory, device="cpu")
    assert main(["convert", str(directory), str(tmp_path / "out")]) == 2
    assert f"error: cannot convert {directory}: Could not read the weights" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("family", "name"),
    [("open_provence", "pruning_head.classifier.weight"), ("provence", "token_classifier.bias")],
)
def test_weights_stored_as_integers_are_refused(
    family: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write_checkpoint(family, tmp_path / family)
    weights = load_file(directory / "model.safetensors")
    weights[name] = (weights[name] * 100).round().to(torch.int32)
    save_file(weights, directory / "model.safetensors")
    with pytest.raises(ValueError, match=rf"stores the weights {name} as int32, not floating"):
        PruningEncoder(directory, device="cpu")
    assert main(["convert", str(directory), str(tmp_path / "out")]) == 2
    assert "not floating point" in capsys.readouterr().err


def test_a_window_longer_than_the_position_table_is_refused_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Zilliz's layout (XLM-RoBERTa: 130 positions, numbered from padding_idx + 1 = 2).
    directory = write_checkpoint("zilliz", tmp_path / "zilliz")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "max_length": 256}))
    with pytest.raises(ValueError, match=r"max_seq_length=256 .* holds 128 positions"):
        PruningEncoder(directory, device="cpu")
    assert main(["convert", str(directory), str(tmp_path / "out")]) == 2
    assert "holds 128 positions" in capsys.readouterr().err


def test_a_pickled_checkpoint_needs_an_opt_in(
    checkpoints: dict[str, Path], imported: dict[str, PruningEncoder], tmp_path: Path
) -> None:
    directory = Path(shutil.copytree(checkpoints["provence"], tmp_path / "bin"))
    weights = load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    torch.save(weights, directory / "pytorch_model.bin")
    with pytest.raises(ImportFormatError, match=r"pytorch_model.bin, a pickle.*allow_pytorch_bin"):
        PruningEncoder(directory, device="cpu")
    assert main(["convert", str(directory), str(tmp_path / "out")]) == 2
    model = PruningEncoder(directory, device="cpu", allow_pytorch_bin=True)
    expected = imported["provence"].process(QUESTION, " ".join(SENTENCES))
    _assert_same(model.process(QUESTION, " ".join(SENTENCES)), expected)
