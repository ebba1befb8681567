"""The training pipeline behind ``pruning-encoder train``: config → trained, evaluated model.

``output_dir`` receives ``checkpoint-*/`` (resumable), ``train_config.json`` (what was asked, to
check a resume against), ``model/`` (the final model in the saved layout, its card filled with the
evaluation), ``metrics.json`` and, with LoRA, ``adapter/`` — the compact delta (adapter + heads +
``bundle.json``) that is all a bundled model needs.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transformers import set_seed

from ..bundled import BUNDLE_FILE, resolve_model_path
from ..data.records import load_records
from ..model_card import write_model_card
from ..modeling_pruning_encoder import PruningEncoderModel
from ..pruning_encoder import PruningEncoder
from ..saving import atomic_directory
from .config import ConfigError, TrainConfig
from .data_collator import PruningDataCollator
from .losses import PruningLoss
from .trainer import PruningEncoderTrainer

logger = logging.getLogger(__name__)

CONFIG_RECORD = "train_config.json"
# A resume must train the same model on the same data with the same loss; how long it trains,
# how it logs and saves may change.
RESUME_SECTIONS = ("model", "data", "loss")


def train(config: TrainConfig, *, resume: bool | str = False) -> dict[str, Any]:
    """Train, choose the threshold, evaluate and save; returns the metrics written.

    In a distributed run (``accelerate launch``, ``torchrun``) every process trains (DDP) and
    the main one alone checkpoints, evaluates and saves; the others return only
    ``{"train": ...}``.
    """
    args = config.training_arguments()
    output = Path(str(args.output_dir))
    _check_resume(output, config, resume)
    set_seed(args.seed)
    try:
        encoder = PruningEncoder(
            resolve_model_path(config.model.base),
            mode=config.model.mode,
            num_labels=config.model.num_labels,
            max_length=config.model.max_seq_length,
            pruning_dropout=config.model.pruning_dropout,
            device="cpu",
        )
    except ValueError as error:  # e.g. a max_seq_length past the backbone's position table
        raise ConfigError(f"model: cannot build on {config.model.base}: {error}") from None
    tokenizer = encoder.tokenizer
    model: Any = encoder.model
    if config.model.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = config.model.lora
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
                # Both heads are named `classifier`: they train in full and ship in the adapter.
                modules_to_save=["classifier"],
            ),
        )
    trainer = PruningEncoderTrainer(
        model,
        args,
        train_dataset=config.data.train,
        eval_dataset=config.data.eval,
        loss=PruningLoss(**asdict(config.loss)),
        data_collator=PruningDataCollator(
            tokenizer,
            int(encoder.config.max_seq_length),
            config.data.language,
            context_tokenization=encoder.config.context_tokenization,
        ),
    )
    if trainer.is_world_process_zero():
        output.mkdir(parents=True, exist_ok=True)
        (output / CONFIG_RECORD).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    train_result = trainer.train(resume_from_checkpoint=resume or None)
    if not trainer.is_world_process_zero():
        # In a distributed run (accelerate launch, torchrun), the main process alone
        # evaluates, chooses the threshold and writes the model.
        return {"train": train_result.metrics}

    adapter = None
    if config.model.lora is not None:
        # The adapter must be saved before merging: merging folds it into the backbone.
        adapter = Path(tempfile.mkdtemp(prefix=".adapter.", dir=output))
        model.save_pretrained(str(adapter))
    final: PruningEncoderModel = model.merge_and_unload() if adapter else model
    final.eval()
    final.tokenizer = tokenizer
    final.config.base_model_name_or_path = config.model.base
    metrics: dict[str, Any] = {"train": train_result.metrics}
    if config.data.eval is not None:
        from ..evaluation import choose_threshold, evaluate  # its baselines' imports are heavy

        records = load_records(config.data.eval)
        threshold = config.threshold
        if threshold == "tune":
            threshold = choose_threshold(final, records)
        final.config.default_threshold = float(threshold)
        metrics["eval"] = evaluate(final, records, baselines=False)
    elif config.threshold != "tune":
        final.config.default_threshold = float(config.threshold)
    metrics["default_threshold"] = final.config.default_threshold

    with atomic_directory(output / "model") as staging:
        final.write_layout(staging)
        if "eval" in metrics:
            write_model_card(final, staging, evaluation=_evaluation_section(config, metrics))
    if adapter is not None:
        (adapter / BUNDLE_FILE).write_text(json.dumps(_bundle_spec(config, final), indent=2))
        # Name the backbone as configured, not by this machine's path to it.
        adapter_config = adapter / "adapter_config.json"
        settings = json.loads(adapter_config.read_text())
        settings["base_model_name_or_path"] = config.model.base
        adapter_config.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
        with atomic_directory(output / "adapter") as staging:
            for file in adapter.iterdir():
                file.rename(staging / file.name)
        adapter.rmdir()
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _check_resume(output: Path, config: TrainConfig, resume: bool | str) -> None:
    if not resume:
        return
    recorded = output / CONFIG_RECORD
    if not recorded.is_file():
        raise ConfigError(f"Cannot resume: {output} holds no {CONFIG_RECORD} from an earlier run.")
    before = json.loads(recorded.read_text())
    now = config.to_dict()
    changed = [
        f"{section}.{key}"
        for section in RESUME_SECTIONS
        for key in sorted(set(before.get(section) or {}) | set(now[section] or {}))
        if (before.get(section) or {}).get(key) != (now[section] or {}).get(key)
    ]
    if changed:
        raise ConfigError(
            f"Cannot resume from {output}: it was trained with a different config "
            f"({', '.join(changed)} changed). Use a new training.output_dir or the same config."
        )


def _bundle_spec(config: TrainConfig, model: PruningEncoderModel) -> dict[str, Any]:
    return {
        "base": config.model.base,
        "mode": config.model.mode,
        "num_labels": config.model.num_labels,
        "max_seq_length": int(model.config.max_seq_length),
        "default_threshold": float(model.config.default_threshold),
        "pruning_dropout": config.model.pruning_dropout,
    }


def _evaluation_section(config: TrainConfig, metrics: dict[str, Any]) -> str:
    from ..evaluation import format_table

    return (
        f"## Evaluation\n\nOn `{config.data.eval}` at the default threshold "
        f"{metrics['default_threshold']:.2f} (chosen on that file):\n\n"
        f"```\n{format_table(metrics['eval'])}\n```\n"
    )
