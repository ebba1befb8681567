"""Tiny random checkpoints in the exact on-disk formats of the published Provence-family models,
and, for each, a reference forward pass written here from the format's description (not with the
library's code), for the importers' tests.

Every checkpoint folder also holds a ``modeling_*.py`` trap: importing it writes ``TRAP_MARK``
beside it, so a test can tell whether anything ran the checkpoint's own code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tiny_backbones import make_config, make_tokenizer
from torch.nn import functional
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    DebertaV2Model,
    PreTrainedConfig,
    XLMRobertaModel,
)

FAMILIES = ("provence", "xprovence", "open_provence", "zilliz")
TRAP_MARK = "REMOTE_CODE_RAN"
HIDDEN = 32
# (ranking logit [batch], keep-probability [batch, tokens]) of a batch of model inputs.
Reference = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]


def _trap(directory: Path, module: str) -> None:
    (directory / f"{module}.py").write_text(
        "from pathlib import Path\n"
        f"Path(__file__).with_name({TRAP_MARK!r}).write_text('ran')\n"
        "raise RuntimeError('the checkpoint code ran')\n"
    )


def _linear(out_features: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "weight": torch.randn(out_features, HIDDEN, generator=generator) * 0.3,
        "bias": torch.randn(out_features, generator=generator) * 0.3,
    }


def _save(directory: Path, config: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in weights.items()}, directory / "model.safetensors")


OPEN_PROVENCE_CODE = "modeling_open_provence_standalone"


def open_provence_config(backbone: PreTrainedConfig, name: str) -> dict[str, Any]:
    """The ``config.json`` of an OpenProvence-format checkpoint on ``backbone``."""
    code = OPEN_PROVENCE_CODE
    return {
        "model_type": "open_provence",
        "architectures": ["OpenProvenceForSequenceClassification"],
        "auto_map": {
            "AutoConfig": f"{code}.OpenProvenceConfig",
            "AutoModel": f"{code}.OpenProvenceForSequenceClassification",
        },
        "mode": "reranking_pruning",
        "base_model_name_or_path": name,
        "base_model_config": backbone.to_dict(),
        "encoder_architecture": backbone.model_type,
        "max_length": 128,
        "default_threadshold": 0.3,
        "default_threshold": None,
        "num_labels": 1,
        "pruning_config": {"hidden_size": HIDDEN},
    }


def write_checkpoint(family: str, directory: Path) -> Path:
    """Write a tiny ``family`` checkpoint (one of :data:`FAMILIES`) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(FAMILIES.index(family))
    torch.manual_seed(FAMILIES.index(family))
    if family == "provence":
        # naver/provence-reranker-debertav3-v1: a DeBERTa-v2 config under model_type "Provence";
        # deberta.*, pooler.dense, classifier [1, H], token_classifier [2, H].
        tokenizer = make_tokenizer("deberta-v2")
        backbone = make_config("deberta-v2", tokenizer)
        backbone.update({"pooler_hidden_act": "gelu", "pooler_dropout": 0.0})
        backbone.pooler_hidden_size = HIDDEN
        weights = {f"deberta.{k}": v for k, v in DebertaV2Model(backbone).state_dict().items()}
        heads = {"pooler.dense": HIDDEN, "classifier": 1, "token_classifier": 2}
        config = {
            **backbone.to_dict(),
            "model_type": "Provence",
            "architectures": ["Provence"],
            "auto_map": {
                "AutoConfig": "modeling_provence.ProvenceConfig",
                "AutoModel": "modeling_provence.Provence",
            },
            "id2label": {"0": "LABEL_0"},
        }
        _trap(directory, "modeling_provence")
        (directory / "README.md").write_text("---\nlicense: cc-by-nc-nd-4.0\n---\n# Provence\n")
    elif family == "xprovence":
        # naver/xprovence-reranker-bgem3-v1: an XLM-RoBERTa config with architectures
        # ["XProvence"]; roberta.* with roberta.pooler.dense, classifier [1, H],
        # token_classifier [2, H].
        tokenizer = make_tokenizer("xlm-roberta")
        backbone = make_config("xlm-roberta", tokenizer)
        # Its 512-token windows need the 514 positions of bge-m3 (numbered from padding_idx + 1).
        backbone.max_position_embeddings = 514
        encoder = XLMRobertaModel(backbone, add_pooling_layer=True)
        weights = {f"roberta.{k}": v for k, v in encoder.state_dict().items()}
        heads = {"classifier": 1, "token_classifier": 2}
        config = {
            **backbone.to_dict(),
            "architectures": ["XProvence"],
            "auto_map": {"AutoModel": "modeling_xprovence_hf.XProvence"},
        }
        _trap(directory, "modeling_xprovence_hf")
    else:
        # OpenProvence (ModernBERT; its bare tokenizer adds no special tokens) and Zilliz
        # semantic-highlight (XLM-RoBERTa): model_type "open_provence", the backbone's config in
        # base_model_config, ranking_model.<seq-cls keys> and pruning_head.classifier [2, H].
        kind = "modernbert-bare" if family == "open_provence" else "xlm-roberta"
        tokenizer = make_tokenizer(kind)
        backbone = make_config(kind, tokenizer)
        backbone.num_labels = 1
        ranking = AutoModelForSequenceClassification.from_config(backbone)
        weights = {f"ranking_model.{k}": v for k, v in ranking.state_dict().items()}
        heads = {"pruning_head.classifier": 2}
        config = open_provence_config(backbone, f"tiny-{kind}")
        _trap(directory, OPEN_PROVENCE_CODE)
    for name, size in heads.items():
        for key, value in _linear(size, generator).items():
            weights[f"{name}.{key}"] = value
    _save(directory, config, weights)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(directory)
    return directory


def reference(family: str, directory: Path) -> Reference:
    """The family's forward pass, written from its format description."""
    config = json.loads((directory / "config.json").read_text())
    weights = load_file(directory / "model.safetensors")

    def linear(x: torch.Tensor, name: str) -> torch.Tensor:
        return functional.linear(x, weights[f"{name}.weight"], weights[f"{name}.bias"])

    def strip(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}

    own = {"model_type", "architectures", "auto_map", "id2label"}
    if family == "provence":
        fields = {k: v for k, v in config.items() if k not in own}
        deberta = DebertaV2Model(AutoConfig.for_model("deberta-v2", **fields)).eval()
        deberta.load_state_dict(strip("deberta."))

        def run(inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            states = deberta(**inputs).last_hidden_state
            pooled = functional.gelu(linear(states[:, 0], "pooler.dense"))
            keep = torch.softmax(linear(states, "token_classifier"), -1)[..., 1]
            return linear(pooled, "classifier")[:, 0], keep

        return run
    if family == "xprovence":
        fields = {k: v for k, v in config.items() if k not in own}
        roberta = XLMRobertaModel(AutoConfig.for_model("xlm-roberta", **fields)).eval()
        roberta.load_state_dict(strip("roberta."))

        def run(inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            states = roberta(**inputs).last_hidden_state
            pooled = torch.tanh(linear(states[:, 0], "roberta.pooler.dense"))
            keep = torch.softmax(linear(states, "token_classifier"), -1)[..., 1]
            return linear(pooled, "classifier")[:, 0], keep

        return run
    base = dict(config["base_model_config"])
    ranking = AutoModelForSequenceClassification.from_config(
        AutoConfig.for_model(base.pop("model_type"), **base)
    ).eval()
    ranking.load_state_dict(strip("ranking_model."))
    # The pruning head reads the last layer's output: on ModernBERT, what enters final_norm.
    final_norm = getattr(ranking.base_model, "final_norm", None)

    def run(inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        seen: list[torch.Tensor] = []
        hook = None
        if final_norm is not None:
            hook = final_norm.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        try:
            outputs = ranking(**inputs, output_hidden_states=final_norm is None)
        finally:
            if hook is not None:
                hook.remove()
        states = seen[0] if seen else outputs.hidden_states[-1]
        keep = torch.softmax(linear(states, "pruning_head.classifier"), -1)[..., 1]
        return outputs.logits[:, 0], keep

    return run
