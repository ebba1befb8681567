"""Load the published Provence-family checkpoints as PruningEncoders, without their code.

Each family's own checkpoints ship a ``modeling_*.py`` that ``trust_remote_code=True`` would run;
these importers read only ``config.json``, the tokenizer files and the weights, so loading a
published model runs no code that came with it. One module per format:

- :mod:`.provence`: naver's Provence (DeBERTa-v3) and XProvence (XLM-RoBERTa);
- :mod:`.open_provence`: OpenProvence (ModernBERT, Japanese rerankers) and Zilliz
  semantic-highlight (XLM-RoBERTa), which shares OpenProvence's layout.

``PruningEncoder(path)`` and ``PruningEncoder.from_pretrained(path)`` pick the importer from
``config.json``; ``pruning-encoder convert SRC DST`` writes the result in our layout.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ..modeling_pruning_encoder import PruningEncoderModel
from . import open_provence, provence
from .checkpoint import Checkpoint, ImportFormatError, assemble

FORMATS = (provence, open_provence)
__all__ = ["ImportFormatError", "import_checkpoint", "imported_family"]


def imported_family(path: str, **hub_kwargs: Any) -> str | None:
    """The published family of the checkpoint at ``path`` (folder or Hub id), from its
    ``config.json``; None for anything else (our own layout, a plain encoder, no config)."""
    checkpoint = Checkpoint.open(path, **hub_kwargs)
    module = None if checkpoint is None else _format(checkpoint)
    return None if module is None or checkpoint is None else module.family(checkpoint.config)


def import_checkpoint(
    path: str, *, allow_pytorch_bin: bool = False, **hub_kwargs: Any
) -> PruningEncoderModel:
    """A published checkpoint (folder or Hub id) as our model, on CPU in float32.

    Raises:
        ImportFormatError: No importer reads it (the message names its ``model_type`` and
            ``architectures``), a weight its format requires is missing (named), or its only
            weights are a pickled ``pytorch_model.bin`` and ``allow_pytorch_bin`` is False.
    """
    checkpoint = Checkpoint.open(path, **hub_kwargs)
    if checkpoint is None:
        raise ImportFormatError(f"{path} has no config.json.")
    module = _format(checkpoint)
    if module is None:
        config = checkpoint.config
        raise ImportFormatError(
            f"{path} is in no format PruningEncoder imports: its config.json has model_type "
            f"{config.get('model_type')!r} and architectures {config.get('architectures')!r}. "
            "Known: naver Provence (model_type 'Provence'), XProvence (architectures "
            "['XProvence']), OpenProvence and Zilliz semantic-highlight (model_type "
            "'open_provence'), and PruningEncoder's own layout (model_type 'pruning_encoder')."
        )
    weights = checkpoint.weights(allow_pytorch_bin=allow_pytorch_bin)
    conversion = module.convert(checkpoint, weights)
    return assemble(conversion, checkpoint)


def _format(checkpoint: Checkpoint) -> ModuleType | None:
    """The importer module whose format the checkpoint's ``config.json`` declares."""
    return next((m for m in FORMATS if m.family(checkpoint.config) is not None), None)
