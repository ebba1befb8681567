"""PruningEncoder: a reranker that also prunes retrieved context, from one forward pass.

Importing the package registers the models with the Transformers Auto* classes, and the
``context-pruning`` pipeline task.
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
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_pruning_encoder import PruningEncoderConfig
from .highlight import highlight
from .modeling_pruning_encoder import (
    PIPELINE_TASK,
    PruningEncoderForSequenceClassification,
    PruningEncoderForTokenClassification,
    PruningEncoderModel,
)
from .pipeline_context_pruning import ContextPruningPipeline
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
if PIPELINE_TASK not in PIPELINE_REGISTRY.supported_tasks:  # re-imports stay quiet
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK, pipeline_class=ContextPruningPipeline, pt_model=AutoModel, type="text"
    )

__all__ = [
    "ContextPruningPipeline",
    "PruningEncoder",
    "PruningEncoderConfig",
    "PruningEncoderForSequenceClassification",
    "PruningEncoderForTokenClassification",
    "PruningEncoderModel",
    "__version__",
    "highlight",
    "split_sentences",
]
