"""``convert``: convert a published Provence-family model to this package's layout."""

from __future__ import annotations

import argparse
from typing import Any

from ..importers import imported_family
from ..pruning_encoder import PruningEncoder
from .common import EXIT_OK, PROG, CliError

CONVERT_EPILOG = f"""\
examples:
  {PROG} convert naver/provence-reranker-debertav3-v1 provence
  {PROG} convert ./open-provence-reranker-v1 open-provence --allow-pytorch-bin

SRC is a published Provence-family checkpoint, a folder or a Hub id: naver Provence, XProvence,
OpenProvence or Zilliz semantic-highlight. Only its config.json, tokenizer files and weights are
read: its own code is never run. DST receives the model in this package's layout, which every
command's --model loads (and transformers, with trust_remote_code), with the family's score
(raw logit or sigmoid) and default threshold in its config.
"""


def add_convert(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    convert = commands.add_parser(
        "convert",
        parents=parents,
        help="convert a published Provence-family model to this package's layout",
        description="Convert a published Provence-family model, without running its code.",
        epilog=CONVERT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert.add_argument(
        "source", metavar="SRC", help="the published checkpoint (folder or Hub id)"
    )
    convert.add_argument("destination", metavar="DST", help="the folder to write")
    convert.add_argument(
        "--allow-pytorch-bin",
        action="store_true",
        help="read weights stored only as a pickled pytorch_model.bin, with "
        "torch.load(weights_only=True) (refused by default: unpickling can run code)",
    )
    convert.set_defaults(handler=_convert)


def _convert(args: argparse.Namespace) -> int:
    source = args.source
    try:
        family = imported_family(source) or "PruningEncoder"
        model = PruningEncoder.from_pretrained(
            source, device="cpu", allow_pytorch_bin=args.allow_pytorch_bin
        )
        model.save_pretrained(args.destination)
    except (OSError, ValueError) as error:
        raise CliError(f"cannot convert {source}: {' '.join(str(error).split())}") from None
    config = model.config
    score = "raw logit" if config.ranking_activation == "identity" else "sigmoid"
    print(
        f"{family} -> {args.destination} (window {config.max_seq_length} tokens, default "
        f"threshold {config.default_threshold}, score: {score})"
    )
    return EXIT_OK
