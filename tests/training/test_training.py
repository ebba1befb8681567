"""Training: collator labels, loss, trainer checkpoints and resume, YAML config, the pipeline."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main
from pruning_encoder.data.records import DataError, Record, read_records
from pruning_encoder.training.config import ConfigError, load_train_config, parse_train_config
from pruning_encoder.training.data_collator import PruningDataCollator, pair_features
from pruning_encoder.training.losses import PruningLoss
from pruning_encoder.training.trainer import PruningEncoderTrainer
from pruning_encoder.training.training_args import PruningEncoderTrainingArguments

RELEVANT = "the cat is in paris."
TEXT = f"{RELEVANT} the dog was in france. it is a city."
OTHER = "the dog was a dog. it was in the city."


def records(n: int = 8) -> list[Record]:
    return [
        Record("where is the cat?", [TEXT, OTHER], [[(0, len(RELEVANT))], []], [1.0, 0.0])
        for _ in range(n)
    ]


def arguments(tmp_path: Path, **overrides: object) -> PruningEncoderTrainingArguments:
    values: dict[str, object] = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4,
        "learning_rate": 5e-3,
        "max_steps": 6,
        "logging_steps": 1,
        "save_strategy": "no",
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
    }
    values.update(overrides)
    return PruningEncoderTrainingArguments(**values)  # type: ignore[arg-type]


def decode(tokenizer, ids: torch.Tensor) -> list[str]:  # type: ignore[no-untyped-def]
    return tokenizer.convert_ids_to_tokens(ids.tolist())


# --- collator -----------------------------------------------------------------------------------


def test_collator_labels_relevant_tokens_one_others_zero_rest_ignored(
    tiny_model: PruningEncoder,
) -> None:
    collator = PruningDataCollator(tiny_model.tokenizer, max_length=64)
    batch = collator(pair_features(records(1)))
    tokens = decode(tiny_model.tokenizer, batch["input_ids"][0])
    labels = batch["pruning_labels"][0].tolist()
    by_token = list(zip(tokens, labels, strict=True))
    context_start = tokens.index("[SEP]") + 1
    assert all(label == -100 for _, label in by_token[:context_start])  # [CLS] query [SEP]
    assert by_token[context_start : context_start + 6] == [
        ("the", 1),
        ("cat", 1),
        ("is", 1),
        ("in", 1),
        ("paris", 1),
        (".", 1),
    ]
    last = tokens.index("[SEP]", context_start)
    assert all(label == 0 for _, label in by_token[context_start + 6 : last])
    assert all(label == -100 for _, label in by_token[last:])  # final [SEP] and padding
    # The irrelevant text: every context token is 0, the rest ignored.
    second = batch["pruning_labels"][1]
    assert set(second.tolist()) == {-100, 0}
    assert batch["labels"].tolist() == [1.0, 0.0]
    assert "scores" not in batch


def test_collator_cuts_long_texts_into_sentence_windows_as_at_inference(
    tiny_model: PruningEncoder,
) -> None:
    collator = PruningDataCollator(tiny_model.tokenizer, max_length=24)
    batch = collator(pair_features(records(1))[:1])
    assert batch["input_ids"].shape[0] > 1  # one text, several windows
    windows = [decode(tiny_model.tokenizer, ids) for ids in batch["input_ids"]]
    assert windows[0][windows[0].index("[SEP]") + 1 :][:2] == ["the", "cat"]
    labels = batch["labels"].tolist()
    # The window holding the relevant sentence is the positive; the others have no target.
    assert labels[0] == 1.0
    assert all(math.isnan(label) for label in labels[1:])
    assert (batch["pruning_labels"][1:] == 1).sum() == 0


def test_collator_passes_teacher_scores(tiny_model: PruningEncoder) -> None:
    record = Record("where is the cat?", [TEXT, OTHER], [[(0, 20)], []], None, [3.5, -2.0])
    batch = PruningDataCollator(tiny_model.tokenizer, 64)(pair_features([record]))
    assert batch["scores"].tolist() == [3.5, -2.0]
    assert "labels" not in batch


# --- loss ---------------------------------------------------------------------------------------


def test_loss_ignores_nan_targets_and_weights_terms() -> None:
    pruning_logits = torch.zeros(2, 3, 2)
    pruning_labels = torch.tensor([[1, 0, -100], [0, -100, -100]])
    token_ce = math.log(2.0)
    ranking = torch.tensor([[0.0], [5.0]])
    targets = torch.tensor([1.0, math.nan])
    loss = PruningLoss("bce", ranking_weight=0.5)(ranking, pruning_logits, pruning_labels, targets)
    assert loss.item() == pytest.approx(token_ce + 0.5 * math.log(2.0))
    mse = PruningLoss("mse", ranking_weight=0.05)(
        ranking, pruning_logits, pruning_labels, torch.tensor([2.0, 5.0])
    )
    assert mse.item() == pytest.approx(token_ce + 0.05 * (4.0 + 0.0) / 2)


def test_model_loss_is_pruning_loss_on_a_collator_batch(tiny_model: PruningEncoder) -> None:
    # Windows 2+ of the relevant text miss its relevant sentence: NaN ranking targets.
    batch = PruningDataCollator(tiny_model.tokenizer, max_length=24)(pair_features(records(1)))
    assert batch["labels"].isnan().any() and not batch["labels"].isnan().all()
    model = tiny_model.model.eval()
    output = model(**batch)
    assert torch.isfinite(output.loss)
    expected = PruningLoss()(
        output.ranking_logits, output.pruning_logits, batch["pruning_labels"], batch["labels"]
    )
    torch.testing.assert_close(output.loss, expected)
    # The model's loss trains: it reaches both heads.
    output.loss.backward()
    assert model.pruning_head.classifier.weight.grad.abs().sum() > 0
    assert model.backbone.classifier.weight.grad.abs().sum() > 0


def test_loss_of_ignored_tokens_only_is_zero_not_nan() -> None:
    # A batch of empty texts has no context token to label.
    loss = PruningLoss(ranking_weight=0)(None, torch.zeros(2, 3, 2), torch.full((2, 3), -100))
    assert loss.item() == 0.0


def test_loss_refuses_several_ranking_labels_as_every_other_path_does() -> None:
    ranking = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    pruning_logits, pruning_labels = torch.zeros(3, 1, 2), torch.full((3, 1), -100)
    for loss in ("bce", "mse"):
        with pytest.raises(ValueError, match="num_labels=2, but a PruningEncoder's ranking head"):
            PruningLoss(loss)(ranking, pruning_logits, pruning_labels, torch.zeros(3))


def test_loss_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="ranking_loss"):
        PruningLoss("hinge")
    with pytest.raises(ValueError, match="not both zero"):
        PruningLoss(ranking_weight=0, pruning_weight=0)
    with pytest.raises(ValueError, match="needs a ranking head"):
        PruningLoss()(None, torch.zeros(1, 2, 2), torch.zeros(1, 2, dtype=torch.long))


# --- trainer ------------------------------------------------------------------------------------


def test_loss_decreases_and_save_load_gives_identical_outputs(
    tiny_model: PruningEncoder, tmp_path: Path
) -> None:
    trainer = PruningEncoderTrainer(
        tiny_model, arguments(tmp_path, max_steps=12), train_dataset=records()
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    tiny_model.save_pretrained(tmp_path / "saved")
    loaded = PruningEncoder(tmp_path / "saved", device="cpu")
    before = tiny_model.process("where is the cat?", TEXT, return_sentence_probabilities=True)
    after = loaded.process("where is the cat?", TEXT, return_sentence_probabilities=True)
    assert after == before


def test_resume_continues_from_the_checkpoint_step(tiny_backbone: Path, tmp_path: Path) -> None:
    def run(max_steps: int, resume: bool) -> PruningEncoderTrainer:
        torch.manual_seed(0)
        model = PruningEncoder(tiny_backbone, device="cpu")
        args = arguments(tmp_path, max_steps=max_steps, save_strategy="steps", save_steps=2)
        trainer = PruningEncoderTrainer(model, args, train_dataset=records())
        trainer.train(resume_from_checkpoint=resume or None)
        return trainer

    run(4, resume=False)
    checkpoint = tmp_path / "out" / "checkpoint-4"
    assert (checkpoint / "pruning_head" / "model.safetensors").is_file()
    assert json.loads((checkpoint / "training_args.json").read_text())["max_steps"] == 4
    assert not list(checkpoint.glob("*.bin"))
    resumed = run(6, resume=True)
    steps = [entry["step"] for entry in resumed.state.log_history if "loss" in entry]
    assert steps[-2:] == [5, 6]
    assert resumed.state.global_step == 6


def test_trainer_reads_jsonl_and_reports_bad_lines(
    tiny_model: PruningEncoder, tmp_path: Path
) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(records(1)[0].to_json()) + "\n" + '{"query": "q"}\n')
    with pytest.raises(DataError, match=r"train\.jsonl:2: missing field 'texts'"):
        PruningEncoderTrainer(tiny_model, arguments(tmp_path), train_dataset=data)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"query": "q", "texts": [""], "labels": [1], "relevant_spans": [[]]}, r"texts\[0\]"),
        (
            {"query": "q", "texts": ["abc"], "labels": [1], "relevant_spans": [[[0, 9]]]},
            "out of range",
        ),
        ({"query": "q", "texts": ["abc"], "relevant_spans": [[]]}, "'labels'"),
        (
            {"query": "q", "texts": ["abc"], "labels": [1], "relevant_spans": [[]], "x": 1},
            "unknown field",
        ),
        (
            {
                "query": "q",
                "texts": ["ok", "a\udbc0"],
                "labels": [1, 0],
                "relevant_spans": [[], []],
            },
            r"texts\[1\] holds a lone surrogate \(U\+DBC0\)",
        ),
    ],
)
def test_malformed_training_data_names_file_and_line(
    tmp_path: Path, row: dict[str, object], message: str
) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text("\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=rf"bad\.jsonl:2: .*{message}"):
        read_records(data)


# --- YAML config --------------------------------------------------------------------------------


def config_dict(tmp_path: Path, backbone: Path) -> dict[str, object]:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records()))
    return {
        "model": {"base": str(backbone), "max_seq_length": 64, "lora": {"r": 4, "alpha": 8}},
        "data": {"train": str(data), "eval": str(data), "language": "en"},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 4,
            "per_device_train_batch_size": 4,
            "learning_rate": 5e-3,
            "save_strategy": "steps",
            "save_steps": 2,
            "use_cpu": True,
            "disable_tqdm": True,
        },
    }


def test_unknown_config_keys_are_named(tmp_path: Path, tiny_backbone: Path) -> None:
    raw = config_dict(tmp_path, tiny_backbone)
    raw["model"]["lora"]["rank"] = 8  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"unknown key\(s\) model\.lora\.rank"):
        parse_train_config(raw)
    raw = config_dict(tmp_path, tiny_backbone)
    raw["training"]["learning_rat"] = 1.0  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"training\.learning_rat"):
        parse_train_config(raw)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) optimizer"):
        parse_train_config({**config_dict(tmp_path, tiny_backbone), "optimizer": {}})


def test_command_line_overrides_apply(tmp_path: Path, tiny_backbone: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, tiny_backbone)))
    config = load_train_config(path, ["training.max_steps=9", "loss.ranking_weight=0.05"])
    assert config.training["max_steps"] == 9
    assert config.loss.ranking_weight == 0.05
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_train_config(path, ["max_steps"])


@pytest.mark.parametrize("native", [True, False])
def test_bf16_auto_follows_what_the_device_multiplies_natively(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    from pruning_encoder.training import config as config_module

    asked = []
    monkeypatch.setattr(config_module, "native_bf16", lambda device: asked.append(device) or native)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, tiny_backbone)))
    config = load_train_config(path, ["training.bf16=auto", "training.use_cpu=true"])
    assert config.training["bf16"] is native and asked == ["cpu"]
    config.training_arguments()  # Trainer accepts what auto chose
    assert load_train_config(path, ["training.bf16=false"]).training["bf16"] is False
    with pytest.raises(ConfigError, match=r"training\.bf16 must be true or false, got .fast."):
        load_train_config(path, ["training.bf16=fast"])


def test_numbers_yaml_reads_as_strings_are_coerced_to_their_field_types(
    tmp_path: Path, tiny_backbone: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = config_dict(tmp_path, tiny_backbone)
    raw["training"]["learning_rate"] = "1e-4"  # type: ignore[index]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw).replace("'1e-4'", "1e-4"))  # as a user writes it
    assert yaml.safe_load(path.read_text())["training"]["learning_rate"] == "1e-4"
    config = load_train_config(path, ["training.max_steps=1e1", "loss.pruning_weight=5e-1"])
    assert config.training["learning_rate"] == 1e-4
    assert config.training["max_steps"] == 10
    assert config.loss.pruning_weight == 0.5
    assert config.training_arguments().learning_rate == 1e-4
    config = load_train_config(path, ["training.learning_rate=2e-5", "model.pruning_dropout=1e-1"])
    assert config.training["learning_rate"] == 2e-5 and config.model.pruning_dropout == 0.1
    for override, message in [
        ("training.learning_rate=fast", "training.learning_rate must be a number, got 'fast'"),
        ("training.max_steps=2.5", "training.max_steps must be an integer, got 2.5"),
        ("training.seed=true", "training.seed must be an integer, got True"),
        ("model.lora.r=big", "model.lora.r must be an integer, got 'big'"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_train_config(path, [override])
    argv = ["train", str(path), "--set", "training.learning_rate=fast"]
    assert main(argv) == 2
    assert "error: " in (err := capsys.readouterr().err) and "training.learning_rate" in err


def test_settings_the_model_or_trainer_refuse_are_config_errors(
    tmp_path: Path, tiny_backbone: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, tiny_backbone)))
    assert main(["train", str(path), "--set", "training.save_strategy=sometimes"]) == 2
    assert "error: training: sometimes is not a valid SaveStrategy" in capsys.readouterr().err
    # The tiny backbone has 128 positions: a longer window is refused before training starts.
    assert main(["train", str(path), "--set", "model.max_seq_length=4096"]) == 2
    assert "max_seq_length=4096 is longer than the backbone's position table" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()


def test_train_pipeline_saves_model_adapter_and_resumes_only_with_the_same_config(
    tmp_path: Path, tiny_backbone: Path
) -> None:
    from pruning_encoder.bundled import apply_bundle_weights, read_bundle
    from pruning_encoder.training.train import train

    raw = config_dict(tmp_path, tiny_backbone)
    metrics = train(parse_train_config(raw))
    run = tmp_path / "run"
    assert 0 <= metrics["default_threshold"] <= 1
    assert "## Evaluation" in (run / "model" / "README.md").read_text()
    model = PruningEncoder(run / "model", device="cpu")
    assert model.config.default_threshold == metrics["default_threshold"]
    # The adapter alone rebuilds the same model over the backbone.
    bundle = read_bundle(run / "adapter")
    assert bundle["max_seq_length"] == 64
    torch.manual_seed(1)  # different random heads: the adapter must bring them
    rebuilt = PruningEncoder(tiny_backbone, max_length=64, device="cpu")
    rebuilt.model = apply_bundle_weights(rebuilt.model, run / "adapter")  # type: ignore[assignment]
    expected = model.process("where is the cat?", TEXT, return_sentence_probabilities=True)
    got = rebuilt.process("where is the cat?", TEXT, return_sentence_probabilities=True)
    assert got["sentence_probabilities"] == pytest.approx(expected["sentence_probabilities"])
    assert got["reranking_score"] == pytest.approx(expected["reranking_score"], abs=1e-5)

    changed = parse_train_config({**raw, "loss": {"ranking_weight": 0.5}})
    with pytest.raises(ConfigError, match=r"loss\.ranking_weight changed"):
        train(changed, resume=True)
    raw["training"]["max_steps"] = 6  # type: ignore[index]
    assert train(parse_train_config(raw), resume=True)["train"]["epoch"] > 0


def test_overlapping_relevant_spans_are_merged() -> None:
    from pruning_encoder.data.records import parse_record

    row = {
        "query": "q",
        "texts": ["abcdefghijk"],
        "labels": [1],
        "relevant_spans": [[[2, 4], [0, 4], [6, 8]]],
    }
    assert parse_record(row, "x").relevant_spans == [[(0, 4), (6, 8)]]


def test_heads_train_at_their_own_learning_rate(tiny_model: PruningEncoder, tmp_path: Path) -> None:
    args = arguments(tmp_path, learning_rate=1e-4, head_learning_rate=1e-2)
    trainer = PruningEncoderTrainer(tiny_model, args, train_dataset=records())
    optimizer = trainer.create_optimizer()
    head_ids = {id(p) for p in tiny_model.model.pruning_head.parameters()}
    head_ids |= {id(p) for p in tiny_model.model.backbone.classifier.parameters()}
    by_lr: dict[float, set[int]] = {}
    for group in optimizer.param_groups:
        by_lr.setdefault(group["lr"], set()).update(id(p) for p in group["params"])
    assert by_lr[1e-2] == head_ids
    assert by_lr[1e-4].isdisjoint(head_ids) and by_lr[1e-4]


# --- batching by length -------------------------------------------------------------------------

LONG = f"{OTHER} the dog was in france. it is a city."  # one window, as is RELEVANT


def mixed_lengths(n: int = 8) -> list[Record]:
    """Short relevant texts and long irrelevant ones, alternating: the worst order to pad."""
    return [
        Record("where is the cat?", [RELEVANT], [[(0, len(RELEVANT))]], [1.0])
        if i % 2
        else Record("where is the cat?", [LONG], [[]], [0.0])
        for i in range(n)
    ]


def padded_tokens(masks: list[torch.Tensor]) -> int:
    return sum(int(mask.numel() - mask.sum()) for mask in masks)


def test_evaluation_batches_pairs_of_similar_length(
    tiny_model: PruningEncoder, tmp_path: Path
) -> None:
    args = arguments(tmp_path, per_device_eval_batch_size=2)
    trainer = PruningEncoderTrainer(tiny_model, args, eval_dataset=mixed_lengths())
    masks: list[torch.Tensor] = []
    hook = tiny_model.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: masks.append(kwargs["attention_mask"]), with_kwargs=True
    )
    try:
        metrics = trainer.evaluate()
    finally:
        hook.remove()
    features = pair_features(mixed_lengths())
    in_order = [
        trainer.data_collator(features[i : i + 2])["attention_mask"]
        for i in range(0, len(features), 2)
    ]
    assert sum(len(mask) for mask in masks) == sum(len(mask) for mask in in_order)
    assert padded_tokens(masks) == 0 < padded_tokens(in_order)
    assert math.isfinite(metrics["eval_loss"])


def test_evaluation_keeps_input_order_when_predictions_are_asked_for(
    tiny_model: PruningEncoder, tmp_path: Path
) -> None:
    args = arguments(tmp_path, prediction_loss_only=False)
    trainer = PruningEncoderTrainer(tiny_model, args, eval_dataset=mixed_lengths())
    assert trainer.eval_dataset is not None
    assert list(trainer._get_eval_sampler(trainer.eval_dataset)) == list(range(8))  # type: ignore[arg-type]


def test_training_groups_by_length_on_request(tiny_model: PruningEncoder, tmp_path: Path) -> None:
    args = arguments(tmp_path, max_steps=2, train_sampling_strategy="group_by_length")
    trainer = PruningEncoderTrainer(tiny_model, args, train_dataset=mixed_lengths())
    order = list(trainer._get_train_sampler())  # type: ignore[arg-type]
    assert sorted(order) == list(range(8))
    assert trainer.train().global_step == 2
