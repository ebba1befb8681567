"""Transformers-level models: outputs, losses, Auto* loading, remote code, bad directories."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_backbones import make_backbone
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
)

import pruning_encoder
from pruning_encoder import (
    PruningEncoder,
    PruningEncoderConfig,
    PruningEncoderForSequenceClassification,
    PruningEncoderForTokenClassification,
    PruningEncoderModel,
)
from pruning_encoder.cli import main


def tiny_config(mode: str = "reranking_pruning") -> PruningEncoderConfig:
    encoder = BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=1,
    )
    return PruningEncoderConfig(mode=mode, encoder_config=encoder, max_seq_length=64)


def batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "input_ids": torch.randint(5, 99, (3, 11)),
        "attention_mask": torch.ones(3, 11, dtype=torch.long),
    }


def test_config_round_trip_and_validation(tmp_path: Path) -> None:
    config = tiny_config()
    config.save_pretrained(tmp_path)
    loaded = PruningEncoderConfig.from_pretrained(tmp_path)
    assert loaded.encoder_config.hidden_size == 32
    assert loaded.mode == "reranking_pruning"
    with pytest.raises(ValueError, match="Unknown mode 'ranking'"):
        PruningEncoderConfig(mode="ranking")
    with pytest.raises(ValueError, match=r"default_threshold must be within \[0, 1\]"):
        PruningEncoderConfig(default_threshold=2.0)
    # The sentence-transformers fork wrote `max_length`.
    assert PruningEncoderConfig(max_length=128).max_seq_length == 128


def test_one_forward_pass_gives_both_heads() -> None:
    model = PruningEncoderForSequenceClassification(tiny_config()).eval()
    output = model(**batch())
    assert output.logits.shape == (3, 1)
    assert output.pruning_logits.shape == (3, 11, 2)
    bare = PruningEncoderModel(tiny_config()).eval()
    bare.load_state_dict(model.state_dict())
    both = bare(**batch())
    torch.testing.assert_close(both.ranking_logits, output.logits)
    torch.testing.assert_close(both.pruning_logits, output.pruning_logits)


def test_token_classification_outputs_and_loss() -> None:
    model = PruningEncoderForTokenClassification(tiny_config("pruning_only")).eval()
    inputs = batch()
    labels = torch.randint(0, 2, (3, 11))
    labels[:, :3] = -100
    output = model(**inputs, labels=labels)
    assert output.logits.shape == (3, 11, 2)
    assert output.ranking_logits is None
    expected = torch.nn.functional.cross_entropy(output.logits.view(-1, 2), labels.view(-1))
    torch.testing.assert_close(output.loss, expected)


def test_sequence_classification_loss_adds_both_terms() -> None:
    model = PruningEncoderForSequenceClassification(tiny_config()).eval()
    inputs = batch()
    labels = torch.tensor([1.0, 0.0, 1.0])
    pruning_labels = torch.full((3, 11), -100)
    ranking_only = model(**inputs, labels=labels).loss
    assert ranking_only is not None and ranking_only > 0
    # Labels that are all ignored add nothing (and no NaN).
    both = model(**inputs, labels=labels, pruning_labels=pruning_labels).loss
    torch.testing.assert_close(both, ranking_only)


def test_pruning_only_refuses_scores() -> None:
    with pytest.raises(ValueError, match="pruning_only model has no ranking head"):
        PruningEncoderForSequenceClassification(tiny_config("pruning_only"))
    model = PruningEncoderModel(tiny_config("pruning_only"))
    with pytest.raises(ValueError, match="Ranking labels were given to a pruning_only model"):
        model(**batch(), labels=torch.ones(3))


def test_auto_classes_are_registered_idempotently() -> None:
    import importlib

    importlib.reload(pruning_encoder)
    config = tiny_config()
    assert type(AutoConfig.for_model("pruning_encoder")) is PruningEncoderConfig
    assert type(AutoModel.from_config(config)) is PruningEncoderModel
    assert type(AutoModelForSequenceClassification.from_config(config)) is (
        PruningEncoderForSequenceClassification
    )
    assert type(AutoModelForTokenClassification.from_config(config)) is (
        PruningEncoderForTokenClassification
    )


@pytest.fixture
def saved(tiny_model: PruningEncoder, tmp_path: Path) -> Path:
    tiny_model.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_auto_loading_matches_pruning_encoder(tiny_model: PruningEncoder, saved: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(saved)
    inputs = tokenizer("what is paris", "paris is the capital", return_tensors="pt")
    reference = tiny_model.model(**inputs)
    for auto in (AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification):
        model = auto.from_pretrained(saved).eval()
        output = model(**inputs)
        ranking = (
            output.ranking_logits
            if auto is not AutoModelForSequenceClassification
            else output.logits
        )
        torch.testing.assert_close(ranking, reference.ranking_logits)
    got = AutoModelForSequenceClassification.from_pretrained(saved).process("q", "A b. C d.")
    want = tiny_model.process("q", "A b. C d.")
    assert got["pruned_context"] == want["pruned_context"]
    assert got["reranking_score"] == pytest.approx(want["reranking_score"], abs=1e-6)


@pytest.mark.slow
def test_remote_code_loads_without_the_package(
    tiny_model: PruningEncoder,
    saved: Path,
    run_without_the_package: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    expected = tiny_model.process("what is paris?", "Paris is big. Cats purr.", threshold=0.5)
    script = textwrap.dedent(
        f"""
        import json
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
        path = {str(saved)!r}
        model = AutoModel.from_pretrained(path, trust_remote_code=True)
        result = model.process("what is paris?", "Paris is big. Cats purr.", threshold=0.5)
        auto = AutoModelForSequenceClassification
        classifier = auto.from_pretrained(path, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        logits = classifier(**tokenizer("a", "b", return_tensors="pt")).logits
        print(json.dumps({{"result": result, "logit": float(logits[0, 0])}}))
        """
    )
    run = run_without_the_package(script)
    assert "Do you wish to run the custom code" not in run.stderr
    remote = json.loads(run.stdout.strip().splitlines()[-1])
    assert remote["result"]["pruned_context"] == expected["pruned_context"]
    assert remote["result"]["reranking_score"] == pytest.approx(
        expected["reranking_score"], abs=1e-6
    )
    inputs = tiny_model.tokenizer("a", "b", return_tensors="pt")
    assert remote["logit"] == pytest.approx(
        float(tiny_model.model(**inputs).ranking_logits[0, 0].detach()), abs=1e-5
    )


def test_directory_without_weights(saved: Path) -> None:
    import shutil

    shutil.rmtree(saved / "ranking_model")
    with pytest.raises(OSError, match=r"missing \['ranking_model'\]"):
        PruningEncoder.from_pretrained(saved)


@pytest.mark.parametrize("folder", ["pruning_head", "ranking_model"])
def test_a_truncated_weights_file_is_an_os_error_naming_it(
    saved: Path, folder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = saved / folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # an interrupted download
    with pytest.raises(OSError, match=f"Could not read the weights {re.escape(str(weights))}"):
        PruningEncoder.from_pretrained(saved)
    (documents := saved.parent / "documents.txt").write_text("Paris is big.\n")
    assert main(["rank", "--model", str(saved), "--query", "q", str(documents)]) == 2
    assert f"error: cannot load a model from {saved}: Could not read" in capsys.readouterr().err


def test_pruning_head_weights_stored_as_integers_are_refused(saved: Path) -> None:
    head = saved / "pruning_head" / "model.safetensors"
    weights = load_file(head)
    save_file({**weights, "classifier.weight": weights["classifier.weight"].long()}, head)
    with pytest.raises(ValueError, match=r"stores the weights classifier\.weight as int64"):
        PruningEncoder.from_pretrained(saved)


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_a_window_longer_than_the_position_table_is_refused_naming_both(
    kind: str, tmp_path: Path
) -> None:
    backbone = make_backbone(kind, tmp_path / kind)
    # The tiny backbones have 128 positions (RoBERTa: 130, numbered from padding_idx + 1).
    with pytest.raises(ValueError, match=r"max_seq_length=129 .* holds 128 positions"):
        PruningEncoder(backbone, device="cpu", max_length=129)
    assert PruningEncoder(backbone, device="cpu", max_length=128).max_length == 128


def test_config_of_another_model_type(tiny_backbone: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"holds a 'bert' model .*neither a PruningEncoder"):
        PruningEncoder.from_pretrained(tiny_backbone)
    with pytest.raises(ValueError, match=r"holds no config\.json: it is not a saved model"):
        PruningEncoder.from_pretrained(tmp_path)


def test_saved_layout_is_the_spec(saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    assert config["model_type"] == "pruning_encoder"
    assert config["architectures"] == ["PruningEncoderForSequenceClassification"]
    assert set(config["auto_map"]) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForSequenceClassification",
        "AutoModelForTokenClassification",
    }
    record = json.loads((saved / "pruning_encoder_config.json").read_text())
    assert record["mode"] == "reranking_pruning" and record["max_length"] == 64
    for name in (
        "modeling_pruning_encoder.py",
        "configuration_pruning_encoder.py",
        "context_pruning.py",
        "sentence_splitter.py",
        "token_budget.py",
        "tokenizer.json",
        "README.md",
        "ranking_model/model.safetensors",
        "ranking_model/config.json",
        "ranking_model/tokenizer.json",
        "pruning_head/config.json",
        "pruning_head/model.safetensors",
    ):
        assert (saved / name).is_file(), name
    # Weights are stored once, never pickled.
    assert not list(saved.glob("*.safetensors"))
    assert not list(saved.rglob("*.bin")) and not list(saved.rglob("*.pt"))
    assert not (saved / "ranking_model_standalone").exists()


def test_a_model_loaded_with_remote_code_saves_a_complete_folder(
    tiny_model: PruningEncoder,
    saved: Path,
    tmp_path: Path,
    run_without_the_package: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    again = tmp_path / "again"
    script = textwrap.dedent(
        f"""
        import json
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(saved)!r}, trust_remote_code=True)
        model.save_pretrained({str(again)!r})
        reloaded = AutoModel.from_pretrained({str(again)!r}, trust_remote_code=True)
        result = reloaded.process("what is paris?", "Paris is big. Cats purr.", threshold=0.5)
        print(json.dumps(result))
        """
    )
    run = run_without_the_package(script)
    assert run.returncode == 0, run.stderr
    expected = tiny_model.process("what is paris?", "Paris is big. Cats purr.", threshold=0.5)
    assert (
        json.loads(run.stdout.strip().splitlines()[-1])["pruned_context"]
        == (expected["pruned_context"])
    )
    assert (again / "pipeline_context_pruning.py").read_bytes() == (
        saved / "pipeline_context_pruning.py"
    ).read_bytes()
