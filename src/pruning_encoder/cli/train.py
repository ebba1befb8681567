"""``train``: train a PruningEncoder from a YAML config."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import EXIT_OK, PROG, CliError

TRAIN_EPILOG = f"""\
examples:
  {PROG} train configs/minilm-l6-wiki.yaml
  {PROG} train my-config.yaml --set training.max_steps=50 --set loss.ranking_weight=0.05
  {PROG} train configs/minilm-l6-wiki.yaml --resume

Multi-GPU: accelerate launch -m pruning_encoder train CONFIG (or torchrun -m pruning_encoder ...).
"""


def add_train(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    train = commands.add_parser(
        "train",
        parents=parents,
        help="train a PruningEncoder from a YAML config",
        description="Train, choose the keep threshold on the eval data, evaluate and save.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("config", metavar="CONFIG", help="the YAML training configuration")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. training.learning_rate=1e-4 (repeatable)",
    )
    train.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="continue from the last checkpoint in training.output_dir (or from CHECKPOINT)",
    )
    train.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from ..data.records import DataError
    from ..evaluation import format_table
    from ..training.config import ConfigError, load_train_config
    from ..training.train import train

    try:
        config = load_train_config(args.config, args.overrides)
        metrics = train(config, resume=args.resume)
    except (ConfigError, DataError) as error:
        raise CliError(str(error)) from None
    if "default_threshold" not in metrics:  # a process of a distributed run other than the main
        return EXIT_OK
    output = Path(config.training["output_dir"])
    if "eval" in metrics:
        print(format_table(metrics["eval"]))
    print(f"model: {output / 'model'}  threshold: {metrics['default_threshold']:.2f}")
    return EXIT_OK
