"""PruningEncoder: a reranker that also prunes retrieved context, from one forward pass.

Importing the package registers the models with the Transformers Auto* classes.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pruning-encoder")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_pruning_encoder import PruningEncoderConfig
from .modeling_pruning_encoder import (
    PruningEncoderForSequenceClassification,
    PruningEncoderForTokenClassification,
    PruningEncoderModel,
)
from .pruning_encoder import PruningEncoder
from .sentence_splitter import split_sentences

AutoConfig.register(PruningEncoderConfig.model_type, PruningEncoderConfig, exist_ok=True)
AutoModel.register(PruningEncoderConfig, PruningEncoderModel, exist_ok=True)
AutoModelForSequenceClassification.register(
    PruningEncoderConfig, PruningEncoderForSequenceClassification, exist_ok=True
)
AutoModelForTokenClassification.register(
    PruningEncoderConfig, PruningEncoderForTokenClassification, exist_ok=True
)

__all__ = [
    "PruningEncoder",
    "PruningEncoderConfig",
    "PruningEncoderForSequenceClassification",
    "PruningEncoderForTokenClassification",
    "PruningEncoderModel",
    "__version__",
    "split_sentences",
]
