"""``export``: export to ONNX (fp32 + int8) or the ranking model alone."""

from __future__ import annotations

import argparse
from typing import Any

from ..onnx_backend import FP32_FILE, INT8_FILE
from .common import EXIT_OK, PROG, CliError, chosen_model_path, load_model

EXPORT_EPILOG = f"""\
examples:
  {PROG} export --onnx my-model-onnx
  {PROG} prune --model my-model-onnx --backend onnx --onnx-file {INT8_FILE} \\
      --question "Who wrote Hamlet?" article.txt
  {PROG} export --model my-model --ranking-model my-reranker

--onnx DIR writes the model in its saved layout plus {FP32_FILE} and
{INT8_FILE} (int8 weights, dynamically quantised activations: faster on CPU, scores
within about 1%); it needs pip install 'pruning-encoder[onnx]'. --ranking-model DIR writes the
ranking model alone, which sentence_transformers.CrossEncoder and pipeline("text-classification")
load.
"""


def add_export(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export",
        parents=parents,
        help="export to ONNX (fp32 + int8) or the ranking model alone",
        description="Export a model for other runtimes and libraries.",
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--onnx", metavar="DIR", help="write the ONNX export here")
    export.add_argument("--no-quantize", action="store_true", help=f"with --onnx, skip {INT8_FILE}")
    export.add_argument("--ranking-model", metavar="DIR", help="write the ranking model alone here")
    export.set_defaults(
        handler=_export, device="cpu", dtype="float32", backend="torch", onnx_file=FP32_FILE
    )


def _export(args: argparse.Namespace) -> int:
    if not args.onnx and not args.ranking_model:
        raise CliError("nothing to export: give --onnx DIR and/or --ranking-model DIR")
    model = load_model(chosen_model_path(args.model), args)
    try:
        if args.onnx:
            model.export_onnx(args.onnx, quantize=not args.no_quantize)
            print(f"onnx: {args.onnx}")
        if args.ranking_model:
            model.export_ranking_model(args.ranking_model)
            print(f"ranking model: {args.ranking_model}")
    except ImportError as error:
        raise CliError(str(error)) from None
    except (OSError, ValueError, RuntimeError) as error:
        raise CliError(f"cannot export: {' '.join(str(error).split())}") from None
    return EXIT_OK
