"""The ONNX backend: export a PruningEncoder's forward pass to ONNX (fp32 and int8) and run it.

``export_onnx`` writes a full saved model (so the directory also loads with the torch backend)
plus ``onnx/model.onnx`` and its dynamically quantised twin ``onnx/model_qint8.onnx``; both take
``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the tokenizer makes them) and
return ``ranking_logits`` (not in ``pruning_only`` mode) and ``pruning_logits``.
:class:`OnnxPruningModel` runs one of them through onnxruntime behind the same ``process()`` and
``score_documents()`` as the torch model, so results differ only by numerics.

The ONNX toolchain (onnx, onnxscript, onnxruntime) is the optional ``[onnx]`` extra.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import cached_file

from .checks import check_num_labels
from .context_pruning import ContextPruningMixin
from .modeling_pruning_encoder import PruningEncoderPreTrainedModel, load_config

ONNX_DIR = "onnx"
FP32_FILE = f"{ONNX_DIR}/model.onnx"
INT8_FILE = f"{ONNX_DIR}/model_qint8.onnx"
OUTPUT_NAMES = ("ranking_logits", "pruning_logits")
# The exported graph must reproduce the torch model this closely on the export's own example.
EXPORT_TOLERANCE = 1e-3


def _require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"The ONNX backend needs {module}: pip install 'pruning-encoder[onnx]'."
        ) from error


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's and quantiser's advice to developers (about torchvision, shape
    naming, pre-processing), which says nothing about the user's model."""
    root = logging.getLogger()
    exporter = logging.getLogger("torch.onnx")
    levels = root.level, exporter.level
    root.setLevel(logging.ERROR)
    exporter.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(levels[0])
        exporter.setLevel(levels[1])


class _Heads(nn.Module):
    """The traced function: model inputs → (ranking logits, pruning logits)."""

    def __init__(self, model: PruningEncoderPreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        ranking_logits, pruning_logits = self.model._heads(
            input_ids, attention_mask, token_type_ids
        )
        return (pruning_logits,) if ranking_logits is None else (ranking_logits, pruning_logits)


def input_names(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names:
        names.append("token_type_ids")
    return names


def write_onnx(
    model: PruningEncoderPreTrainedModel, directory: Path, *, quantize: bool = True
) -> None:
    """Write ``onnx/model.onnx`` (and ``onnx/model_qint8.onnx``) for ``model`` into ``directory``.

    Both graphs are fused for onnxruntime from one export: the fp32 one with the query, key and
    value projections packed into one ``Attention`` node (fastest in fp32), the int8 one with
    them apart, so that they are quantised too. Each fp32 graph is checked against the torch
    model on an example batch before the int8 one is made; a mismatch is an error, not a
    silently wrong file.
    """
    onnx_ir = _require("onnx_ir")
    for module in ("onnxscript", "onnxruntime.quantization"):
        _require(module)  # before the export, which takes a while
    tokenizer = model.tokenizer
    names = input_names(tokenizer)
    example = tokenizer(
        ["Who wrote Hamlet?", "Where is it?"],
        ["Hamlet is a tragedy by William Shakespeare. It is long.", "In Denmark."],
        padding=True,
        return_tensors="pt",
    )
    inputs = tuple(example[name] for name in names)
    outputs = list(OUTPUT_NAMES if model.config.has_ranking_head else OUTPUT_NAMES[1:])
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=int(model.config.max_seq_length))
    heads = _Heads(model).eval()
    with torch.inference_mode(False), torch.no_grad(), _quiet():
        program = torch.onnx.export(
            heads,
            inputs,
            dynamo=True,
            input_names=names,
            output_names=outputs,
            dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
            verbose=False,
        )
        expected = [tensor.numpy() for tensor in heads(*inputs)]
    assert program is not None
    # The int8 graph is fused apart from the fp32 one (below), from this unfused copy.
    unfused = onnx_ir.to_proto(program.model)
    fp32 = directory / FP32_FILE
    fp32.parent.mkdir(parents=True, exist_ok=True)
    onnx_ir.save(_fused(program.model), fp32)
    _check(str(fp32), example, names, outputs, expected)
    if not quantize:
        return
    with _query_key_value_apart():
        source = onnx_ir.to_proto(_fused(onnx_ir.from_proto(unfused)))
    _check(source.SerializeToString(), example, names, outputs, expected)
    _quantize(source, directory / INT8_FILE, model.config.encoder_config)


def _fused(model: Any) -> Any:
    """Fused Attention / SkipLayerNorm / BiasGelu kernels; constant folding afterwards turns each
    Attention's packed QKV weight into a stored initializer rather than a Concat on every call."""
    onnxscript = _require("onnxscript")
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    fused, _ = optimize_for_ort(model)
    onnxscript.optimizer.optimize(fused, input_size_limit=2**31, output_size_limit=2**31)
    return fused


@contextlib.contextmanager
def _query_key_value_apart() -> Iterator[None]:
    """Fuse attention into ``MultiHeadAttention`` behind three query/key/value MatMuls rather
    than one ``Attention`` node with a packed weight: the quantiser then makes those MatMuls
    int8 like any other (it quantises ``Attention`` only with 7-bit weights), a quarter of the
    encoder's matrix products. Where onnxscript's fusion steps move, the packed graph stays."""
    from onnxscript.rewriter.ort_fusions import _core

    original = getattr(_core, "fuse_attention", None)
    if original is None:
        yield
        return
    _core.fuse_attention = lambda model, debug=False: 0
    try:
        yield
    finally:
        _core.fuse_attention = original


def _check(
    graph: str | bytes, example: Any, names: list[str], outputs: list[str], expected: list
) -> None:
    """Raise unless the fp32 ``graph`` reproduces the torch outputs on the example batch."""
    onnxruntime = _require("onnxruntime")
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    got = session.run(outputs, {name: example[name].numpy() for name in names})
    for name, want, have in zip(outputs, expected, got, strict=True):
        error = float(np.abs(want - have).max())
        if error > EXPORT_TOLERANCE:
            raise RuntimeError(f"The ONNX export's {name} differ from torch by {error:.2e}.")


def _quantize(graph: Any, target: Path, encoder_config: Any) -> None:
    """int8 weights (per output channel) and int8 activations with one scale per token.

    onnxruntime's dynamic quantisation scales each activation tensor as a whole, so one row's
    result would depend on the other rows of the batch (other documents, padding); its
    ``DynamicQuantizeLinear`` nodes are replaced by per-row quantisation (:func:`_per_row`),
    which makes every token's result independent of the batch and follows outliers row by row.
    The feed-forward down-projections stay fp32: their inputs (after GELU) carry outliers that
    cost agreement with torch for little speed (measured: 4% faster with them, twice the largest
    sentence-probability error). ``Attention`` nodes, where the fusion packed one (see
    :func:`_query_key_value_apart`), stay fp32 too.
    """
    onnx = _require("onnx")
    quantization = _require("onnxruntime.quantization")
    # The exporter's shape annotations disagree with onnx's shape inference in places (broadcast
    # biases); dropping them lets the quantiser infer its own.
    del graph.graph.value_info[:]
    weights = {init.name: tuple(init.dims) for init in graph.graph.initializer}
    down = (getattr(encoder_config, "intermediate_size", None), encoder_config.hidden_size)
    keep_fp32 = [
        node.name
        for node in graph.graph.node
        if node.op_type == "Attention"
        or (node.op_type == "MatMul" and weights.get(node.input[1]) == down)
    ]
    with tempfile.TemporaryDirectory() as scratch:
        dynamic = Path(scratch, "dynamic.onnx")
        with _quiet():
            quantization.quantize_dynamic(
                graph,
                str(dynamic),
                weight_type=quantization.QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=keep_fp32,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        quantized = onnx.load(str(dynamic))
    _per_row(quantized)
    onnx.save(quantized, str(target))


# uint8 codes of a symmetric int8 range, shifted by a fixed zero point: onnxruntime's fast
# kernels multiply uint8 activations by int8 weights, and take one zero point per tensor.
ZERO_POINT = 128
LEVELS = 127.0


def _per_row(model: Any) -> None:
    """Replace each ``DynamicQuantizeLinear(x) -> (q, scale, zero_point)`` in place by symmetric
    per-row quantisation over ``x``'s last axis: ``scale = max|x_row| / 127`` (shape
    ``[..., rows, 1]``), ``q = round(x / scale) + 128`` as uint8, zero point 128. The quantiser's
    ``MatMulInteger`` and its ``Mul`` by ``scale * weight_scale`` broadcast the per-row scale
    unchanged."""
    onnx = _require("onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    constants = {
        "per_row_last_axis": np.array([-1], dtype=np.int64),
        "per_row_tiny": np.array(1e-12, dtype=np.float32),
        "per_row_levels": np.array(LEVELS, dtype=np.float32),
        "per_row_shift": np.array(float(ZERO_POINT), dtype=np.float32),
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    nodes = []
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        x, (codes, scale, zero_point) = node.input[0], node.output
        name = f"{node.name or x}_per_row"
        if opset >= 18:
            reduce = helper.make_node(
                "ReduceMax", [f"{name}_abs", "per_row_last_axis"], [f"{name}_max"], keepdims=1
            )
        else:
            reduce = helper.make_node(
                "ReduceMax", [f"{name}_abs"], [f"{name}_max"], axes=[-1], keepdims=1
            )
        zero = numpy_helper.from_array(np.array(ZERO_POINT, dtype=np.uint8))
        nodes += [
            helper.make_node("Abs", [x], [f"{name}_abs"]),
            reduce,
            helper.make_node("Max", [f"{name}_max", "per_row_tiny"], [f"{name}_range"]),
            helper.make_node("Div", [f"{name}_range", "per_row_levels"], [scale]),
            helper.make_node("Div", ["per_row_levels", f"{name}_range"], [f"{name}_inverse"]),
            helper.make_node("Mul", [x, f"{name}_inverse"], [f"{name}_scaled"]),
            helper.make_node("Round", [f"{name}_scaled"], [f"{name}_rounded"]),
            helper.make_node("Add", [f"{name}_rounded", "per_row_shift"], [f"{name}_shifted"]),
            helper.make_node("Cast", [f"{name}_shifted"], [codes], to=onnx.TensorProto.UINT8),
            helper.make_node("Constant", [], [zero_point], value=zero),
        ]
    left = {node.op_type for node in nodes if node.op_type.startswith("DynamicQuantize")}
    if left:  # a quantiser that fuses differently: its per-tensor scales would be batch-wide
        raise RuntimeError(f"The int8 graph has {sorted(left)} nodes that are not per token.")
    del graph.node[:]
    graph.node.extend(nodes)


class OnnxPruningModel(ContextPruningMixin):
    """A saved PruningEncoder run by onnxruntime, with the torch model's ``process()``.

    Args:
        path: A directory (or Hub id) written by :func:`write_onnx`, i.e. by
            ``PruningEncoder.export_onnx`` or ``pruning-encoder export --onnx``.
        file_name: The graph to run, relative to ``path``: ``"onnx/model.onnx"`` (fp32) or
            ``"onnx/model_qint8.onnx"`` (int8, faster).

    onnxruntime runs with as many intra-op threads as torch (``torch.set_num_threads``).
    """

    def __init__(self, path: str, file_name: str = FP32_FILE) -> None:
        onnxruntime = _require("onnxruntime")
        self.config = load_config(path)
        if self.config.has_ranking_head:  # as the torch model refuses it when it loads
            check_num_labels(self.config.encoder_config.num_labels, path)
        self.name_or_path = path
        graph = _resolve(path, file_name)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(
            graph, options, providers=["CPUExecutionProvider"]
        )
        self.file_name = file_name
        nodes = _require("onnx").load(graph, load_external_data=False).graph.node
        self.quantized = any(node.op_type == "MatMulInteger" for node in nodes)
        self._input_names = {node.name for node in self.session.get_inputs()}
        self._outputs = [node.name for node in self.session.get_outputs()]
        self._tokenizer: PreTrainedTokenizerBase | None = None

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:  # type: ignore[override]
        if self._tokenizer is None:
            self._tokenizer = AutoTokenizer.from_pretrained(self.name_or_path)
        return self._tokenizer

    @contextlib.contextmanager
    def _inference(self) -> Iterator[torch.device]:
        yield torch.device("cpu")

    def _heads(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        given = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }
        feeds = {name: given[name].numpy() for name in self._input_names}  # type: ignore[union-attr]
        results = dict(zip(self._outputs, self.session.run(self._outputs, feeds), strict=True))
        ranking = results.get("ranking_logits")
        return (
            None if ranking is None else torch.from_numpy(ranking),
            torch.from_numpy(results["pruning_logits"]),
        )


def _resolve(path: str, file_name: str) -> str:
    local = Path(path, file_name)
    if os.path.isdir(path):
        if not local.is_file():
            raise FileNotFoundError(
                f"{local} does not exist: write it with `pruning-encoder export --onnx {path}` "
                "(or PruningEncoder(...).export_onnx(path))."
            )
        return str(local)
    resolved = cached_file(path, file_name)
    assert resolved is not None
    return str(resolved)
