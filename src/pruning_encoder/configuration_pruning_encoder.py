"""Configuration of a PruningEncoder: a Hugging Face encoder plus a token-level pruning head.

This module travels with saved weights (``trust_remote_code=True``): it imports only the standard
library, numpy and transformers, and its siblings :mod:`.checks` and :mod:`.keep_calibration`.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PreTrainedConfig

from .checks import MODES, check_choice, check_mode, check_threshold
from .keep_calibration import check_keep_calibration

__all__ = ["MODES", "PruningEncoderConfig"]
RANKING_ACTIVATIONS = ("sigmoid", "identity")
PRUNING_HEAD_INPUTS = ("last_hidden_state", "last_layer")
CONTEXT_TOKENIZATIONS = ("whole", "per_sentence")


class PruningEncoderConfig(PreTrainedConfig):
    """Configuration of a PruningEncoder model.

    Args:
        mode: ``"reranking_pruning"`` (backbone with a ranking head + pruning head) or
            ``"pruning_only"`` (plain encoder + pruning head).
        encoder_config: The backbone's configuration (a config object or its dict).
        base_model_name_or_path: Where the backbone came from; recorded for the model card.
        max_seq_length: Maximum tokens of one (question, context window) input. (Named so because
            transformers reserves ``max_length`` for generation; a ``max_length`` key, as written
            by the sentence-transformers fork, is read as this.)
        default_threshold: Sentences whose keep-probability (calibrated, with
            ``keep_calibration``) exceeds it are kept by ``process()``. Fitting or changing
            ``keep_calibration`` changes what a threshold means: choose this again after it
            (e.g. with ``PruningEncoder.calibrate``).
        pruning_dropout: Dropout in front of the pruning head's linear layer.
        ranking_activation: How a ranking logit becomes the reported ``reranking_score``:
            ``"sigmoid"`` (a probability, for models trained with a classification loss) or
            ``"identity"`` (the raw logit, as naver's Provence and XProvence report it: they are
            distilled from a teacher's scores with an MSE loss).
        pruning_head_input: What the pruning head reads: ``"last_hidden_state"`` (the encoder's
            output) or ``"last_layer"`` (``hidden_states[-1]``, the last layer's output before
            any final norm: OpenProvence trains its head so, which differs on ModernBERT).
        zero_score_when_empty: ``process()`` reports a score of 0 for a document of which no
            sentence is kept (OpenProvence's default).
        context_tokenization: How ``process()`` tokenizes a context: ``"whole"`` (in one call,
            as training does) or ``"per_sentence"`` (each sentence with its trailing whitespace
            on its own, the ids concatenated: OpenProvence's ``process()`` does so, and on a
            byte-level BPE tokenizer the space before a sentence then becomes a token of its
            own, ``'.', 'Ġ', 'It'`` instead of ``'.', 'ĠIt'``). The OpenProvence importer sets
            ``"per_sentence"`` for byte-level BPE tokenizers, so that imported models prune as
            their own code does.
        keep_calibration: A monotonic map applied to each sentence's mean keep-probability
            before the threshold, e.g. ``{"method": "platt", "a": 1.2, "b": 3.4}`` (see
            :mod:`.keep_calibration`; fitted by ``PruningEncoder.calibrate_keep_probabilities``),
            or None: the mean itself, as models saved without it.
        imported_from: For a published checkpoint imported by ``pruning_encoder.importers``: its
            ``family``, ``source`` (folder or Hub id) and ``license`` as published (None where
            it states none); the model card reports them.

    Example:
        >>> from transformers import BertConfig
        >>> config = PruningEncoderConfig(encoder_config=BertConfig(hidden_size=32))
        >>> config.mode, config.hidden_size
        ('reranking_pruning', 32)
    """

    model_type = "pruning_encoder"

    def __init__(
        self,
        mode: str = "reranking_pruning",
        encoder_config: PreTrainedConfig | dict[str, Any] | None = None,
        base_model_name_or_path: str | None = None,
        max_seq_length: int = 512,
        default_threshold: float = 0.5,
        pruning_dropout: float = 0.1,
        ranking_activation: str = "sigmoid",
        pruning_head_input: str = "last_hidden_state",
        zero_score_when_empty: bool = False,
        context_tokenization: str = "whole",
        imported_from: dict[str, Any] | None = None,
        keep_calibration: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        check_mode(mode)
        default_threshold = check_threshold(default_threshold, name="default_threshold")
        check_choice(ranking_activation, RANKING_ACTIVATIONS, "ranking_activation")
        check_choice(pruning_head_input, PRUNING_HEAD_INPUTS, "pruning_head_input")
        check_choice(context_tokenization, CONTEXT_TOKENIZATIONS, "context_tokenization")
        max_seq_length = kwargs.pop("max_length", max_seq_length)
        if max_seq_length < 8:
            raise ValueError(f"max_seq_length must be at least 8 tokens, got {max_seq_length}.")
        if isinstance(encoder_config, dict):
            encoder_config = AutoConfig.for_model(**encoder_config)
        self.mode = mode
        self.encoder_config = encoder_config
        self.base_model_name_or_path = base_model_name_or_path
        self.max_seq_length = max_seq_length
        self.default_threshold = default_threshold
        self.pruning_dropout = pruning_dropout
        self.ranking_activation = ranking_activation
        self.pruning_head_input = pruning_head_input
        self.zero_score_when_empty = zero_score_when_empty
        self.context_tokenization = context_tokenization
        self.imported_from = imported_from
        self.keep_calibration = check_keep_calibration(keep_calibration)
        super().__init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        if self.encoder_config is None:
            raise ValueError("This PruningEncoderConfig has no encoder_config.")
        return int(self.encoder_config.hidden_size)

    @property
    def has_ranking_head(self) -> bool:
        return self.mode == "reranking_pruning"
