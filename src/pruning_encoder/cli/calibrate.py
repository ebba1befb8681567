"""``calibrate``: choose the keep threshold that reaches a target on your own records."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..keep_calibration import METHODS
from .common import (
    EXIT_INVALID_INPUT,
    EXIT_OK,
    PROG,
    CliError,
    chosen_model_path,
    load_model,
    need_matplotlib,
    read_records_option,
)

CALIBRATE_EPILOG = f"""\
examples:
  {PROG} calibrate --data examples/calibration.jsonl --target-answer-kept 0.95
  {PROG} calibrate --data records.jsonl --target-compression 0.6 --json
  {PROG} calibrate --model my-model --data val.jsonl --target-answer-kept 0.9 \\
      --plot curve.png --save my-model-calibrated
  {PROG} calibrate --data val.jsonl --fit-probabilities platt --target-answer-kept 0.95 \\
      --save my-model-calibrated

Records are in the training format (query, texts, labels, relevant_spans, answers), each with
answers or relevant spans. One forward pass scores every sentence; every threshold 0.01..0.99 is
then applied to those probabilities. --target-answer-kept picks the highest threshold (the most
removed) that keeps every answer of that share of the relevant texts (relevant sentences kept,
for records with spans but no answers); --target-compression the lowest threshold (the most
kept) that removes that share of all characters. Exit status 1 when no threshold reaches the
target (the table is still printed; --save writes nothing).
"""


def add_calibrate(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        parents=parents,
        help="choose the keep threshold that reaches a target on your records",
        description="Sweep the keep threshold over records and choose the one that reaches a "
        "target: answers kept, or characters removed.",
        epilog=CALIBRATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    calibrate.add_argument(
        "--data", required=True, metavar="JSONL", help="records with answers or relevant spans"
    )
    target = calibrate.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--target-answer-kept",
        type=float,
        metavar="P",
        help="keep every answer of this share of the relevant texts, in (0, 1]",
    )
    target.add_argument(
        "--target-compression",
        type=float,
        metavar="P",
        help="remove this share of all characters, in (0, 1]",
    )
    calibrate.add_argument(
        "--fit-probabilities",
        choices=METHODS,
        help="first fit the model's keep-probabilities to the records' relevant sentences "
        "(thresholds then compare calibrated probabilities; --save keeps the fit)",
    )
    calibrate.add_argument(
        "--json", action="store_true", help="print one JSON object (threshold, target, curve)"
    )
    calibrate.add_argument(
        "--plot", metavar="PNG", help="draw the curve to this image (needs matplotlib)"
    )
    calibrate.add_argument(
        "--save",
        metavar="DIR",
        help="write the model to DIR with the chosen threshold as its default (atomically)",
    )
    calibrate.set_defaults(handler=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from ..evaluation.calibration import calibrate, format_calibration, plot_calibration, summary

    if args.plot:
        need_matplotlib()
    records = read_records_option(args.data)
    model = load_model(chosen_model_path(args.model), args)
    try:
        if args.fit_probabilities:
            model.calibrate_keep_probabilities(
                records,
                method=args.fit_probabilities,
                batch_size=args.batch_size,
                show_progress_bar=not args.quiet and sys.stderr.isatty(),
            )
        calibration = calibrate(
            model,
            records,
            target_answer_kept=args.target_answer_kept,
            target_compression=args.target_compression,
            batch_size=args.batch_size,
            show_progress_bar=not args.quiet and sys.stderr.isatty(),
        )
    except (ValueError, TypeError) as error:
        raise CliError(str(error)) from None
    print(json.dumps(calibration) if args.json else format_calibration(calibration))
    if args.plot:
        try:
            plot_calibration(calibration, args.plot)
        except (OSError, ValueError) as error:
            raise CliError(f"cannot write {args.plot}: {error}") from None
    if calibration["threshold"] is None:
        if args.json:  # the table's summary says it otherwise
            print(f"error: {summary(calibration)}", file=sys.stderr)
        if args.save:
            print(f"error: nothing saved to {args.save}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    if args.save:
        model.config.default_threshold = calibration["threshold"]
        try:
            model.save_pretrained(args.save)
        except (OSError, ValueError) as error:
            raise CliError(f"cannot save to {args.save}: {error}") from None
    return EXIT_OK
