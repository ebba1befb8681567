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
    PruningEncoderForSequenceClassification,
    PruningEncoderForTokenClassification,
    PruningEncoderModel,
)
from .moved_modules import install as _install_moved_modules
from .pipeline_context_pruning import ContextPruningPipeline
from .pruning_encoder import PruningEncoder
from .saving import PIPELINE_TASK
from .sentence_splitter import split_sentences

AutoConfig.register(PruningEncoderConfig.model_type, PruningEncoderConfig, exist_ok=True)
AutoModel.register(PruningEncoderConfig, PruningEncoderModel, exist_ok=True)
AutoModelForSequenceClassification.register(
    PruningEncoderConfig, PruningEncoderForSequenceClassification, exist_ok=True
)
AutoModelForTokenClassification.register(
    PruningEncoderConfig, PruningEncoderForTokenClassification, exist_ok=True
)
_install_moved_modules()
if PIPELINE_TASK not in PIPELINE_REGISTRY.supported_tasks:  # re-imports stay quiet
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK, pipeline_class=ContextPruningPipeline, pt_model=AutoModel, type="text"
    )

# The training classes need the ``train`` extra, so they load when first used.
_TRAINING = ("PruningEncoderTrainer", "PruningEncoderTrainingArguments", "PruningLoss")


def __getattr__(name: str) -> object:
    if name in _TRAINING:
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ContextPruningPipeline",
    "PruningEncoder",
    "PruningEncoderConfig",
    "PruningEncoderForSequenceClassification",
    "PruningEncoderForTokenClassification",
    "PruningEncoderModel",
    "PruningEncoderTrainer",
    "PruningEncoderTrainingArguments",
    "PruningLoss",
    "__version__",
    "highlight",
    "split_sentences",
]
