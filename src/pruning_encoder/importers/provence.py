"""naver's Provence (DeBERTa-v3) and XProvence (XLM-RoBERTa, from bge-reranker-v2-m3).

Source: Chirkova et al., "Provence: efficient and robust context pruning for retrieval-augmented
generation" (ICLR 2025, arXiv:2501.16214); the checkpoints ``naver/provence-reranker-debertav3-v1``
and ``naver/xprovence-reranker-bgem3-v1``, whose layout is read here as their public training code
(``naver/bergen``, ``scripts/provence`` and ``scripts/xprovence``) and its ports (candle's
``provence.rs``, text-embeddings-inference's XProvence backend) describe it:

- ``config.json``: ``model_type "Provence"`` and ``architectures ["Provence"]`` (the rest is a
  DeBERTa-v2 config), or ``architectures ["XProvence"]`` (an XLM-RoBERTa config).
- Provence: ``deberta.*``, ``pooler.dense`` (a ``ContextPooler``: the first token, dense,
  ``pooler_hidden_act``), ``classifier`` ``[1, H]`` on the pooled output: exactly
  ``DebertaV2ForSequenceClassification``.
- XProvence: ``roberta.*`` with ``roberta.pooler.dense`` (dense + tanh on the first token) and
  ``classifier`` ``[1, H]`` on it, which is arithmetically the RoBERTa classification head
  (``classifier.dense``, tanh, ``classifier.out_proj``); a checkpoint that already has that head
  is read as it is.
- Both: ``token_classifier`` ``[2, H]`` on the last hidden states, keep = softmax index 1.

The ranking score is the raw logit (the rerankers are distilled from a teacher's scores with an MSE
loss), so ``ranking_activation`` is ``"identity"``. Windows are 512 tokens.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig

from .checkpoint import Checkpoint, Conversion, ImportFormatError, Weights, require, take

PROVENCE = "naver Provence"
XPROVENCE = "naver XProvence"
DEFAULT_THRESHOLD = {
    # The threshold of Provence's model card and process().
    PROVENCE: 0.1,
    # text-embeddings-inference's default for XProvence ("0.3 conservative, 0.7 aggressive").
    XPROVENCE: 0.3,
}
WINDOW = 512
# Keys of their config.json that are not the backbone's.
NOT_BACKBONE = {"model_type", "architectures", "auto_map", "transformers_version", "torch_dtype"}


def family(config: dict[str, Any]) -> str | None:
    """``PROVENCE``, ``XPROVENCE``, or None for another format."""
    architectures = config.get("architectures") or []
    model_type = str(config.get("model_type", "")).lower()
    if "XProvence" in architectures or model_type == "xprovence":
        return XPROVENCE
    if "Provence" in architectures or model_type == "provence":
        return PROVENCE
    return None


def convert(checkpoint: Checkpoint, weights: Weights) -> Conversion:
    """Our backbone and pruning head from a Provence or XProvence checkpoint.

    Raises:
        ImportFormatError: A head or backbone weight the format requires is missing.
    """
    name = family(checkpoint.config)
    assert name is not None
    path = checkpoint.path
    require(weights, ["token_classifier.weight", "token_classifier.bias"], name, path)
    backbone_config = {k: v for k, v in checkpoint.config.items() if k not in NOT_BACKBONE}
    if any(key.startswith("deberta.") for key in weights):
        model_type, backbone = "deberta-v2", _deberta(weights, name, path)
    elif any(key.startswith("roberta.") for key in weights):
        model_type, backbone = "xlm-roberta", _roberta(weights, name, path)
    else:
        raise ImportFormatError(
            f"{path} looks like a {name} checkpoint but has neither deberta.* nor roberta.* "
            "encoder weights."
        )
    backbone_config["num_labels"] = 1
    backbone_config.pop("id2label", None)
    backbone_config.pop("label2id", None)
    return Conversion(
        family=name,
        encoder_config=AutoConfig.for_model(model_type, **backbone_config),
        backbone=backbone,
        pruning_head=take(weights, "token_classifier."),
        settings={
            "max_seq_length": WINDOW,
            "default_threshold": DEFAULT_THRESHOLD[name],
            "ranking_activation": "identity",
        },
    )


def _deberta(weights: Weights, name: str, path: str) -> Weights:
    require(
        weights,
        ["pooler.dense.weight", "pooler.dense.bias", "classifier.weight", "classifier.bias"],
        name,
        path,
    )
    return {k: v for k, v in weights.items() if not k.startswith("token_classifier.")}


def _roberta(weights: Weights, name: str, path: str) -> Weights:
    encoder = {
        k: v
        for k, v in weights.items()
        if k.startswith("roberta.") and not k.startswith("roberta.pooler.")
    }
    if "classifier.out_proj.weight" in weights:  # already the classification head
        head = take(weights, "classifier.")
    else:
        names = ["roberta.pooler.dense.weight", "roberta.pooler.dense.bias"]
        require(weights, [*names, "classifier.weight", "classifier.bias"], name, path)
        head = {
            "dense.weight": weights["roberta.pooler.dense.weight"],
            "dense.bias": weights["roberta.pooler.dense.bias"],
            "out_proj.weight": weights["classifier.weight"],
            "out_proj.bias": weights["classifier.bias"],
        }
    return {**encoder, **{f"classifier.{k}": v for k, v in head.items()}}
