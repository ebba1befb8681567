"""Inference precision: which dtype the encoder runs in, and how the heads stay in float32.

Two ways to run the encoder in bfloat16 (or float16), both with the ranking and pruning heads,
the softmax and sigmoid and the token-to-sentence means in float32 (reduced-precision heads flip
keep decisions near a threshold):

- ``dtype="auto"`` (the default of :class:`~pruning_encoder.PruningEncoder`): the weights stay
  float32, and inference runs a reduced-precision copy of the backbone
  (:class:`InferenceCopy`), so saving, exporting and training work as with float32. On CPUs this
  is as fast as converting the weights; bf16 autocast over float32 weights is not: it keeps the
  residual stream in float32 and casts around every matrix product, and on an AMX CPU ran slower
  than float32 itself (5.4 s of CPU time against 5.0 s on 32 pairs; converted weights: 1.7 s).
- ``dtype="bfloat16"`` / ``"float16"``: the weights themselves are converted
  (:func:`reduce_encoder_precision`), half the memory, but the model can no longer be saved,
  exported or trained.

This module travels with saved weights (``trust_remote_code=True``): torch and transformers only.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
AUTO = "auto"


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware: a CPU with ``avx512_bf16``
    or AMX (Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4 and later), or a CUDA GPU
    of compute capability 8.0 or more (Ampere and later). Elsewhere torch emulates bf16, more
    slowly than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cpu = torch.cpu
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    return False


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The torch dtype that ``dtype`` names on ``device``: ``"auto"`` (or None) is bfloat16
    where :func:`native_bf16` holds, float32 elsewhere.

    Raises:
        ValueError: ``dtype`` names no float dtype of :data:`DTYPES`.
    """
    if dtype is None or dtype == AUTO:
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(
        f"dtype must be one of {', '.join(DTYPES)}, {AUTO} (or the torch dtype), got {dtype!r}."
    )


def reduce_encoder_precision(backbone: PreTrainedModel, dtype: torch.dtype) -> None:
    """Convert the encoder (``backbone.base_model``) to ``dtype`` in place; the ranking head's
    modules (the backbone's other children: pooler, classifier) stay float32 and take float32
    inputs, as the pruning head does. A ``pruning_only`` model's backbone is its encoder."""
    base: nn.Module = backbone.base_model  # type: ignore[assignment]
    nn.Module.to(base, dtype=dtype)
    if base is backbone:
        return
    for child in backbone.children():
        if child is not base:
            child.register_forward_pre_hook(_inputs_to_float32, with_kwargs=True)


def _inputs_to_float32(
    _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    def cast(value: Any) -> Any:
        is_float = isinstance(value, torch.Tensor) and value.is_floating_point()
        return value.float() if is_float else value

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}


class InferenceCopy:
    """A copy of a backbone with its encoder in ``dtype``, for inference over float32 weights.

    The copy is made on first use and made again whenever the backbone's weights change: an
    optimizer step or ``load_state_dict`` (in place, which bumps each tensor's version counter),
    a move to another device or a replaced parameter (new storage). It costs the encoder's
    weights once more in ``dtype`` (half of them again in bf16).
    """

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self._key: tuple[tuple[int, int], ...] | None = None
        self._copy: PreTrainedModel | None = None

    def of(self, backbone: PreTrainedModel) -> PreTrainedModel:
        """The reduced-precision copy of ``backbone``'s current weights."""
        key = tuple((p.data_ptr(), p._version) for p in backbone.parameters())
        reduced = self._copy
        if reduced is None or key != self._key:
            # Made outside inference mode: inference tensors could not become parameters.
            with torch.inference_mode(False), torch.no_grad():
                reduced = copy.deepcopy(backbone)
                reduce_encoder_precision(reduced, self.dtype)
                reduced.requires_grad_(False)
                reduced.eval()
            self._key, self._copy = key, reduced
        return reduced
