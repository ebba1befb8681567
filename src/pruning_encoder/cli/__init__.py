"""The ``pruning-encoder`` command line.

One subcommand per task, each a sibling under ``build_parser()`` sharing the option groups of
``console_options()`` and ``model_options()``: ``prune``, ``rank``, ``train``, ``eval``,
``calibrate``, ``build-data``, ``label``, ``write-questions``, ``export``, ``convert`` and
``serve``. Without ``--model``, the bundled default model is used.

Exit status: 0 success, 1 some input was invalid (reported and skipped), 2 usage or setup error
(bad arguments, unreadable input, a model that does not load).

Layout: this module holds ``main()`` and ``build_parser()``; ``common`` what several
subcommands share (exit codes, ``CliError``, the option groups, loading the model, reading
input and writing output atomically, the console); ``jsonl`` the batch ``--input`` JSONL
machinery of ``prune`` and ``rank``; then one module per subcommand with its epilog, its
``add_*(commands, parents)`` and its handler: ``prune``, ``rank``, ``train``, ``evaluate``
(``eval``), ``calibrate``, ``build_data``, ``label`` (``label`` and ``write-questions``),
``export``, ``convert`` and ``serve``. The heavy modules a subcommand needs (training,
evaluation, the server, the LLM client) are imported by its handler, when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .build_data import add_build_data
from .calibrate import add_calibrate
from .common import (
    EXIT_USAGE,
    PROG,
    CliError,
    console,
    console_options,
    model_choice,
    model_options,
)
from .convert import add_convert
from .evaluate import add_eval
from .export import add_export
from .label import add_label
from .prune import add_prune
from .rank import add_rank
from .serve import add_serve
from .train import add_train

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 success, 1 some input was invalid, 2 usage or setup error.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse has already reported
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    with console(verbose=args.verbose):
        try:
            return handler(args)
        except CliError as error:
            print(f"error: {error}", file=sys.stderr)
            return error.exit_code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Rerank and prune retrieved context for RAG with a PruningEncoder."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_prune(commands, parents=[console_options(), model_options()])
    add_rank(commands, parents=[console_options(), model_options()])
    add_train(commands, parents=[console_options()])
    add_eval(commands, parents=[console_options(), model_options()])
    add_calibrate(commands, parents=[console_options(), model_options()])
    add_build_data(commands, parents=[console_options()])
    add_label(commands, parents=[console_options()])
    add_export(commands, parents=[console_options(), model_choice()])
    add_convert(commands, parents=[console_options()])
    add_serve(commands, parents=[console_options(), model_options()])
    return parser
