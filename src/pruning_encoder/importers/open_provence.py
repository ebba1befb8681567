"""OpenProvence (ModernBERT and Japanese rerankers) and Zilliz semantic-highlight (XLM-RoBERTa).

Source: the OpenProvence project (``hotchpotch/open_provence``, its
``modeling_open_provence_standalone.py``), whose checkpoints ``hotchpotch/open-provence-reranker-*``
are written by that code; ``zilliz/semantic-highlight-bilingual-v1`` is trained with it on
bge-reranker-v2-m3 and ships the same layout. As that code reads them:

- ``config.json``: ``model_type "open_provence"``; the backbone's own config (with its
  ``model_type``) in ``base_model_config``; the threshold in ``default_threadshold`` (so spelled;
  ``default_threshold`` is the fallback, 0.1 the default); the window in ``max_length`` (512).
- Weights: ``ranking_model.`` + the backbone's ``AutoModelForSequenceClassification`` state (older
  checkpoints: the same keys unprefixed) and ``pruning_head.classifier`` ``[2, H]``.
- The pruning head reads ``hidden_states[-1]`` (on ModernBERT the last layer before
  ``final_norm``), keep = softmax index 1; the score is the sigmoid of the best window's ranking
  logit, and 0 when nothing of the document is kept (``zero_score_when_empty``).
- A tokenizer that adds no special tokens gets ``[CLS] q [SEP] c [SEP]``
  (:func:`~pruning_encoder.pair_template.add_pair_template`).
- Its ``process()`` tokenizes each sentence (with its trailing whitespace) on its own and
  concatenates the ids. On a byte-level BPE tokenizer (every published ModernBERT model) the
  space before a sentence then becomes a token of its own, so the import sets
  ``context_tokenization="per_sentence"`` there; elsewhere both ways give the same ids.
"""

from __future__ import annotations

import json
from typing import Any

from transformers import AutoConfig, PreTrainedTokenizerBase

from .checkpoint import Checkpoint, Conversion, ImportFormatError, Weights, require, take

OPEN_PROVENCE = "OpenProvence"
DEFAULT_THRESHOLD = 0.1
WINDOW = 512


def family(config: dict[str, Any]) -> str | None:
    """``OPEN_PROVENCE``, or None for another format."""
    return OPEN_PROVENCE if config.get("model_type") == "open_provence" else None


def convert(checkpoint: Checkpoint, weights: Weights) -> Conversion:
    """Our backbone and pruning head from an OpenProvence-format checkpoint.

    Raises:
        ImportFormatError: ``base_model_config`` or a required weight is missing.
    """
    path, config = checkpoint.path, checkpoint.config
    base = config.get("base_model_config")
    if not isinstance(base, dict) or "model_type" not in base:
        raise ImportFormatError(
            f"{path} is an OpenProvence checkpoint without a base_model_config that names its "
            "backbone's model_type."
        )
    require(
        weights,
        ["pruning_head.classifier.weight", "pruning_head.classifier.bias"],
        OPEN_PROVENCE,
        path,
    )
    backbone = take(weights, "ranking_model.") or {
        k: v for k, v in weights.items() if not k.startswith("pruning_head.")
    }
    backbone_config = {
        k: v for k, v in base.items() if k not in ("model_type", "id2label", "label2id")
    }
    backbone_config["num_labels"] = 1
    threshold = config.get("default_threadshold")
    if threshold is None:
        threshold = config.get("default_threshold")
    return Conversion(
        family=OPEN_PROVENCE,
        encoder_config=AutoConfig.for_model(base["model_type"], **backbone_config),
        backbone=backbone,
        pruning_head=take(weights, "pruning_head.classifier."),
        settings={
            "max_seq_length": int(config.get("max_length") or WINDOW),
            "default_threshold": DEFAULT_THRESHOLD if threshold is None else float(threshold),
            "ranking_activation": "sigmoid",
            "pruning_head_input": "last_layer",
            "zero_score_when_empty": True,
            "context_tokenization": (
                "per_sentence" if is_byte_level_bpe(checkpoint.tokenizer()) else "whole"
            ),
        },
    )


def is_byte_level_bpe(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether ``tokenizer`` (a fast one) is a byte-level BPE (GPT-2, RoBERTa, ModernBERT)."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    pre_tokenizer = json.dumps(spec.get("pre_tokenizer"), separators=(",", ":"))
    return spec["model"].get("type") == "BPE" and '"type":"ByteLevel"' in pre_tokenizer
