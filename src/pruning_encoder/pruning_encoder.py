"""The high-level :class:`PruningEncoder`: create, load, save, export, predict, rank and process."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from . import __version__
from .bundled import bundle_dir
from .checks import (
    check_choice,
    check_mode,
    check_num_labels,
    check_ranking_head,
    check_text,
    check_top_k,
)
from .configuration_pruning_encoder import PruningEncoderConfig
from .context_pruning import Document, ranking_scores
from .importers import imported_family
from .loading import NewModel, load_torch_model
from .model_card import write_export_card, write_model_card
from .modeling_pruning_encoder import (
    PruningEncoderPreTrainedModel,
    load_config,
    tag_ranking_activation,
)
from .onnx_backend import FP32_FILE, OnnxPruningModel, write_onnx
from .precision import AUTO, InferenceCopy, reduce_encoder_precision, resolve_dtype
from .saving import atomic_directory, save_tokenizer
from .sentence_splitter import split_sentences

logger = logging.getLogger(__name__)

STANDALONE_DIR = "ranking_model_standalone"
EXPORT_METADATA_NAME = "export_metadata.json"
BACKENDS = ("torch", "onnx")


class PruningEncoder(nn.Module):
    """A reranker that also prunes: one forward pass scores a context and keeps what is relevant.

    Args:
        model_name_or_path: The name of a bundled model (``"minilm-l6-wiki"``, trained, works
            offline), a saved PruningEncoder directory or Hub id (loaded as is), a published
            Provence-family checkpoint (naver Provence, XProvence, OpenProvence, Zilliz
            semantic-highlight; imported without running its code, see
            :mod:`pruning_encoder.importers`), or any Hugging Face encoder (path or Hub id) to
            build a new, untrained PruningEncoder on.
        mode: ``"reranking_pruning"`` or ``"pruning_only"`` (only when building a new model).
        num_labels: Ranking labels of a new model: 1 (a relevance logit, scored with a
            sigmoid), the only number supported.
        max_length: Tokens per (question, window) input; default: what the backbone allows, at
            most 512.
        default_threshold: The keep threshold ``process()`` uses when none is given.
        pruning_dropout: Dropout in front of the new pruning head.
        device: Where to put the model (default: CUDA when available, else CPU).
        backend: ``"torch"``, or ``"onnx"`` to run a directory written by :meth:`export_onnx`
            through onnxruntime on CPU (same ``process()``, ``predict()`` and ``rank()``).
        file_name: With ``backend="onnx"``, the graph to run: ``"onnx/model.onnx"`` (fp32) or
            ``"onnx/model_qint8.onnx"`` (int8: faster, scores within about 1%).
        dtype: The precision of inference. ``"auto"`` (the default): bfloat16 where the device
            multiplies it natively (:func:`~pruning_encoder.precision.native_bf16`: CPUs with
            ``avx512_bf16`` or AMX, CUDA GPUs of compute capability 8.0 or more), float32
            elsewhere; the weights stay float32 (inference runs a bf16 copy of the encoder), so
            the model saves, exports and trains as a float32 one. ``"float32"``: float32
            throughout. ``"bfloat16"`` or ``"float16"`` (or the torch dtype): the encoder's
            weights are converted, half the memory, but the model can then not be saved,
            exported or trained. In every precision the ranking and pruning heads, the softmax
            and sigmoid and the token-to-sentence means run in float32. With
            ``backend="onnx"``, ``"auto"`` runs the graph in its own precision.
        allow_pytorch_bin: Import a published checkpoint whose only weights are a pickled
            ``pytorch_model.bin`` (read with ``torch.load(weights_only=True)``); refused by
            default, since unpickling can run code.

    Raises:
        ValueError: An unknown ``mode`` or ``backend``, or ``num_labels`` other than 1 (a saved
            or imported model with several ranking labels is refused as it loads).
        ImportFormatError: A published checkpoint lacks a weight its format requires, or holds
            only a ``pytorch_model.bin`` without ``allow_pytorch_bin``.

    Example:
        >>> model = PruningEncoder("path/to/minilm")  # doctest: +SKIP
        >>> model.process("Who wrote Hamlet?", "Hamlet is a play by Shakespeare. It is long.")
        ... # doctest: +SKIP
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str],
        *,
        mode: str = "reranking_pruning",
        num_labels: int = 1,
        max_length: int | None = None,
        default_threshold: float = 0.5,
        pruning_dropout: float = 0.1,
        device: str | torch.device | None = None,
        backend: str = "torch",
        file_name: str = FP32_FILE,
        dtype: str | torch.dtype | None = AUTO,
        allow_pytorch_bin: bool = False,
    ) -> None:
        super().__init__()
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        auto = dtype is None or dtype == AUTO
        # With ONNX, auto is the graph's own precision: fp32 or int8, as file_name says.
        precision = torch.float32 if backend == "onnx" and auto else resolve_dtype(dtype, target)
        check_mode(mode)
        check_choice(backend, BACKENDS, "backend")
        check_num_labels(num_labels)
        path = str(model_name_or_path)
        self.name_or_path = path
        self.model: PruningEncoderPreTrainedModel | OnnxPruningModel
        if backend == "onnx":
            if target.type != "cpu":
                raise ValueError(f"backend='onnx' runs on CPU, not {device}.")
            if precision != torch.float32:
                raise ValueError(
                    "dtype= is for the torch backend; for a faster ONNX graph, load "
                    "onnx/model_qint8.onnx."
                )
            if bundle_dir(path) is not None:
                raise ValueError(
                    f"{path} is a bundled torch model: export it first (`pruning-encoder export "
                    f"--model {path} --onnx DIR`), then load DIR with backend='onnx'."
                )
            self.model = OnnxPruningModel(path, file_name)
            return
        new = NewModel(mode, num_labels, max_length, default_threshold, pruning_dropout)
        self.model = load_torch_model(path, new, allow_pytorch_bin=allow_pytorch_bin)
        self.to(target)
        if precision != torch.float32 and auto:  # float32 weights kept: see precision.py
            self.model.inference_copy = InferenceCopy(precision)
        elif precision != torch.float32:
            reduce_encoder_precision(self.model.backbone, precision)
        self.eval()

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        backend: str = "torch",
        file_name: str = FP32_FILE,
        dtype: str | torch.dtype | None = AUTO,
        allow_pytorch_bin: bool = False,
    ) -> PruningEncoder:
        """Load a trained model: a bundled one, a saved PruningEncoder or a published
        Provence-family checkpoint (directory or Hub id); anything else is a clear error."""
        path = str(model_name_or_path)
        if bundle_dir(path) is None and imported_family(path) is None:
            load_config(path)
        return cls(
            path,
            device=device,
            backend=backend,
            file_name=file_name,
            dtype=dtype,
            allow_pytorch_bin=allow_pytorch_bin,
        )

    @property
    def config(self) -> PruningEncoderConfig:
        return self.model.config  # type: ignore[no-any-return]

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.model.tokenizer

    @property
    def device(self) -> torch.device:
        if isinstance(self.model, OnnxPruningModel):
            return torch.device("cpu")
        return next(self.model.parameters()).device

    @property
    def backend(self) -> str:
        return "onnx" if isinstance(self.model, OnnxPruningModel) else "torch"

    @property
    def precision(self) -> str:
        """What inference runs in: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (the
        encoder; the heads are always float32), or ``"int8"`` for a quantised ONNX graph."""
        if isinstance(self.model, OnnxPruningModel):
            return "int8" if self.model.quantized else "float32"
        copy = self.model.inference_copy
        dtype = copy.dtype if copy is not None else next(self.model.backbone.parameters()).dtype
        return str(dtype).removeprefix("torch.")

    def extra_repr(self) -> str:
        return f"precision={self.precision}, backend={self.backend}, device={self.device}"

    @property
    def mode(self) -> str:
        return str(self.config.mode)

    @property
    def max_length(self) -> int:
        return int(self.config.max_seq_length)

    def forward(self, **inputs: torch.Tensor) -> Any:
        return self._torch_model("forward()")(**inputs)

    def process(self, question: Any, context: Any, **options: Any) -> Any:
        """Score and prune contexts; see :meth:`ContextPruningMixin.process` for every option.

        Example:
            >>> result = model.process("Who wrote Hamlet?", "Hamlet is by Shakespeare. It rains.")
            ... # doctest: +SKIP
            >>> result["pruned_context"]  # doctest: +SKIP
            'Hamlet is by Shakespeare.'
        """
        return self.model.process(question, context, **options)

    def predict(
        self,
        inputs: Sequence[Any],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
    ) -> np.ndarray | torch.Tensor | list[torch.Tensor] | float:
        """Relevance scores of (query, document) pairs, as ``sentence_transformers.CrossEncoder``.

        Documents longer than ``max_length`` are scored by their best window, never truncated.
        Without ``activation_fn``, scores are ``process()``'s ``reranking_score``
        (:func:`~pruning_encoder.context_pruning.ranking_scores`: the sigmoid probability, or
        the raw logit for naver's Provence-style models, per ``config.ranking_activation``);
        with it, ``activation_fn`` of the raw logits. ``apply_softmax`` is accepted for
        CrossEncoder's signature: with one ranking logit it changes nothing.

        Raises:
            ValueError: An input is not a pair of strings, a text holds a lone surrogate (named
                as ``inputs[i][0]`` or ``inputs[i][1]``), or the model is pruning_only.

        Example:
            >>> model.predict([("Who wrote Hamlet?", "Shakespeare wrote it.")])  # doctest: +SKIP
            array([0.93], dtype=float32)
        """
        check_ranking_head(self.config, "predict()")
        single = len(inputs) == 2 and all(isinstance(x, str) for x in inputs)
        pairs = [inputs] if single else inputs
        for i, pair in enumerate(pairs):
            if isinstance(pair, str) or len(pair) != 2 or not all(isinstance(x, str) for x in pair):
                raise ValueError(f"inputs[{i}] must be a (query, document) pair of strings.")
            check_text(pair[0], f"inputs[{i}][0]")
            check_text(pair[1], f"inputs[{i}][1]")
        scores = self._scores(pairs, batch_size, show_progress_bar, activation_fn)
        if convert_to_tensor:
            return scores[0] if single else scores
        if convert_to_numpy:
            array = scores.numpy()
            return array[0] if single else array
        return scores[0] if single else list(scores)

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> list[dict[str, Any]]:
        """Documents sorted by relevance to the query, as ``CrossEncoder.rank``; scores as
        :meth:`predict`'s.

        Returns:
            ``[{"corpus_id": int, "score": float, "text": str (with return_documents)}, ...]``.

        Raises:
            TypeError: The query or a document is not a string.
            ValueError: The query or a document holds a lone surrogate (named as ``query`` or
                ``documents[i]``), ``top_k`` is not a positive integer, or the model is
                pruning_only.

        Example:
            >>> model.rank("Who wrote Hamlet?", ["It rains.", "Shakespeare wrote Hamlet."])
            ... # doctest: +SKIP
            [{'corpus_id': 1, 'score': 0.97}, {'corpus_id': 0, 'score': 0.02}]
        """
        check_ranking_head(self.config, "rank()")
        check_text(query, "query")
        for i, document in enumerate(documents):
            check_text(document, f"documents[{i}]")
        top_k = check_top_k(top_k)
        pairs = [(query, document) for document in documents]
        scores = self._scores(pairs, batch_size, show_progress_bar, activation_fn).numpy()
        ranked = []
        for i in np.argsort(-scores, kind="stable")[:top_k]:
            entry: dict[str, Any] = {"corpus_id": int(i), "score": float(scores[i])}
            if return_documents:
                entry["text"] = documents[i]
            ranked.append(entry)
        return ranked

    def _scores(
        self,
        pairs: Sequence[Sequence[str]],
        batch_size: int,
        show_progress_bar: bool | None,
        activation_fn: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> torch.Tensor:
        """``[pairs]`` float32 scores of checked (query, document) pairs."""
        documents = [Document(query, text, split_sentences(text)) for query, text in pairs]
        logits, _ = self.model.score_documents(
            documents, batch_size=batch_size, show_progress_bar=show_progress_bar
        )
        assert logits is not None  # a ranking head: checked by the callers
        if activation_fn is not None:
            return activation_fn(torch.from_numpy(logits))[:, 0]
        scores = ranking_scores(logits, self.config.ranking_activation)
        return torch.from_numpy(scores.astype(np.float32))

    def calibrate(
        self,
        records: Any,
        *,
        target_answer_kept: float | None = None,
        target_compression: float | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> dict[str, Any]:
        """The keep threshold that reaches a target on ``records``, and the trade-off curve;
        see :func:`pruning_encoder.evaluation.calibration.calibrate` for the rules and the result.

        Example:
            >>> calibration = model.calibrate("records.jsonl", target_answer_kept=0.95)
            ... # doctest: +SKIP
            >>> model.config.default_threshold = calibration["threshold"]  # doctest: +SKIP
            >>> model.save_pretrained("calibrated")  # doctest: +SKIP
        """
        from .evaluation.calibration import calibrate

        return calibrate(
            self,
            records,
            target_answer_kept=target_answer_kept,
            target_compression=target_compression,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
        )

    def calibrate_keep_probabilities(
        self,
        records: Any,
        *,
        method: str = "platt",
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> dict[str, Any]:
        """Fit a map from sentence keep-probabilities to the chance a sentence is relevant, on
        labelled ``records``, and set it as ``config.keep_calibration`` (``save_pretrained``
        keeps it; every backend, the pipeline, the service and remote code apply it); see
        :func:`pruning_encoder.evaluation.keep_calibration_fit.fit_keep_calibration`.

        Thresholds then compare calibrated probabilities: choose ``default_threshold`` again
        afterwards (e.g. with :meth:`calibrate`), since the old one meant something else.

        Example:
            >>> model.calibrate_keep_probabilities("validation.jsonl")  # doctest: +SKIP
            {'method': 'platt', 'a': 1.4, 'b': 3.1}
            >>> model.config.default_threshold = 0.3  # doctest: +SKIP
        """
        from .evaluation.keep_calibration_fit import fit_keep_calibration

        fitted = fit_keep_calibration(
            self,
            records,
            method=method,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
        )
        self.config.keep_calibration = fitted
        return fitted

    def save_pretrained(
        self, save_directory: str | os.PathLike[str], *, export_ranking_model: bool = False
    ) -> None:
        """Save in the spec's layout, atomically; optionally add ``ranking_model_standalone/``."""
        model = self._float32_model("save_pretrained()")
        if export_ranking_model:
            check_ranking_head(self.config, "export_ranking_model")
        with atomic_directory(save_directory) as staging:
            model.write_layout(staging)
            write_model_card(model, staging)
            if export_ranking_model:
                self._write_ranking_export(staging / STANDALONE_DIR, str(save_directory))
        logger.info("Saved PruningEncoder to %s", save_directory)

    def export_onnx(self, save_directory: str | os.PathLike[str], *, quantize: bool = True) -> None:
        """Save the model (as :meth:`save_pretrained`) plus ``onnx/model.onnx`` and, with
        ``quantize``, ``onnx/model_qint8.onnx``, atomically; load the result with
        ``PruningEncoder(save_directory, backend="onnx")``. Needs ``pip install
        'pruning-encoder[onnx]'``.

        Example:
            >>> model.export_onnx("my-model-onnx")  # doctest: +SKIP
            >>> fast = PruningEncoder("my-model-onnx", backend="onnx",
            ...                       file_name="onnx/model_qint8.onnx")  # doctest: +SKIP
        """
        model = self._float32_model("export_onnx()")
        original_device = self.device
        with atomic_directory(save_directory) as staging:
            model.write_layout(staging)
            write_model_card(model, staging)
            self.to("cpu")
            try:
                write_onnx(model, staging, quantize=quantize)
            finally:
                self.to(original_device)
        logger.info("Exported PruningEncoder to ONNX in %s", save_directory)

    def export_ranking_model(self, save_directory: str | os.PathLike[str]) -> None:
        """Write the ranking model alone: loadable by ``AutoModelForSequenceClassification``,
        ``CrossEncoder`` and ``pipeline("text-classification")``."""
        check_ranking_head(self.config, "export_ranking_model()")
        with atomic_directory(save_directory) as staging:
            self._write_ranking_export(staging, str(save_directory))

    def _write_ranking_export(self, directory: Path, destination: str) -> None:
        model = self._float32_model("export_ranking_model()")
        tag_ranking_activation(model.backbone, model.config.ranking_activation)
        model.backbone.save_pretrained(directory)
        save_tokenizer(self.tokenizer, directory, int(model.config.max_seq_length))
        metadata = {
            "exported_from": "PruningEncoder",
            "original_capabilities": {"ranking": True, "pruning": True},
            "export_type": "ranking_only",
            "pruning_encoder_version": __version__,
            "source_path": model.name_or_path or None,
            "destination": destination,
        }
        (directory / EXPORT_METADATA_NAME).write_text(json.dumps(metadata, indent=2) + "\n")
        write_export_card(model, directory, metadata)

    def _torch_model(self, what: str) -> PruningEncoderPreTrainedModel:
        if isinstance(self.model, OnnxPruningModel):
            raise ValueError(
                f"{what} needs the torch backend; load {self.model.name_or_path} without "
                "backend='onnx'."
            )
        return self.model

    def _float32_model(self, what: str) -> PruningEncoderPreTrainedModel:
        """The torch model, for what writes or trains its weights: in float32 only."""
        model = self._torch_model(what)
        precision = next(model.backbone.parameters()).dtype
        if precision != torch.float32:
            raise ValueError(
                f"{what} needs float32 weights, but this model's are {precision}: load "
                f"{self.name_or_path} again with dtype='auto' (the default) or 'float32'."
            )
        return model
