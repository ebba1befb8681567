"""``build-data``: build the Wikipedia training/evaluation data offline."""

from __future__ import annotations

import argparse
from typing import Any

from .common import PROG, CliError


def add_build_data(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    from ..data import wiki as wiki_data

    build = commands.add_parser(
        "build-data",
        parents=parents,
        help="build the Wikipedia training/evaluation data offline",
        description=(wiki_data.__doc__ or "").split("\n\n")[0],
        epilog=(
            f"examples:\n  {PROG} build-data\n  {PROG} build-data --out data/wiki --seed 1\n\n"
            f"sources: {wiki_data.INSTALL}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wiki_data.add_arguments(build)
    build.set_defaults(handler=_build_data)


def _build_data(args: argparse.Namespace) -> int:
    from ..data.wiki import run

    try:
        return run(args)
    except (FileNotFoundError, ValueError) as error:
        raise CliError(str(error)) from None
