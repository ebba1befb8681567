"""The ``pruning-encoder`` command line.

One subcommand per task, each a sibling under ``build_parser()`` sharing the option groups of
``_console_options()`` and ``_model_options()``: ``prune``, ``rank``, ``train``, ``eval``,
``build-data``, ``export``, ``convert`` and ``serve``. Without ``--model``, the bundled
default model is used.

Exit status: 0 success, 1 some input was invalid (reported and skipped), 2 usage or setup error
(bad arguments, unreadable input, a model that does not load).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TextIO

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm
from transformers.utils import logging as hf_logging

from .bundled import DEFAULT_MODEL, bundle_dir, resolve_model_path
from .importers import imported_family
from .onnx_backend import FP32_FILE, INT8_FILE
from .pruning_encoder import BACKENDS, PruningEncoder

logger = logging.getLogger(__name__)

PROG = "pruning-encoder"
EXIT_OK = 0
EXIT_INVALID_INPUT = 1
EXIT_USAGE = 2


PRUNE_FIELDS = {"question": "a string", "context": "a string"}
RANK_FIELDS = {"query": "a string", "documents": "an array of strings"}
RESULT_FIELDS = ("pruned_context", "reranking_score", "compression_rate", "kept_spans")
JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}

PRUNE_EPILOG = f"""\
examples:
  {PROG} prune --model my-model --question "Who wrote Hamlet?" article.txt
  cat article.txt | {PROG} prune --model my-model --question "Who wrote Hamlet?" --json
  {PROG} prune --model my-model --input pairs.jsonl --output pruned.jsonl

Each --input line is a JSON object with string fields "question" and "context"; its output line
is the same object plus {", ".join(RESULT_FIELDS)}.
An invalid line is reported as FILE:LINE on stderr and skipped; the exit status is then 1.
"""

Options = dict[str, Any]


class CliError(Exception):
    """A failure reported as one ``error: ...`` line on stderr, without a traceback.

    Args:
        message: What went wrong, on one line.
        exit_code: The exit status to end with.
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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
    with _console(verbose=args.verbose):
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
    _add_prune(commands, parents=[_console_options(), _model_options()])
    _add_rank(commands, parents=[_console_options(), _model_options()])
    _add_train(commands, parents=[_console_options()])
    _add_eval(commands, parents=[_console_options(), _model_options()])
    _add_build_data(commands, parents=[_console_options()])
    _add_export(commands, parents=[_console_options(), _model_choice()])
    _add_convert(commands, parents=[_console_options()])
    _add_serve(commands, parents=[_console_options(), _model_options()])
    return parser


def _console_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "-v", "--verbose", action="store_true", help="show debug logs and Transformers' messages"
    )
    options.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return options


def _model_choice() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--model",
        metavar="DIR",
        default=DEFAULT_MODEL,
        help=f"a saved PruningEncoder directory or a bundled model (default: {DEFAULT_MODEL})",
    )
    return options


def _model_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False, parents=[_model_choice()])
    options.add_argument(
        "--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available, else cpu)"
    )
    options.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="precision of the encoder's weights at inference: bfloat16 pays on GPUs and on CPUs "
        "with native bf16 (avx512_bf16, AMX); elsewhere it is slower (default: float32)",
    )
    options.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        metavar="N",
        help="inputs per batch (default: 32)",
    )
    options.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="onnx: run a model written by `export --onnx` through onnxruntime (default: torch)",
    )
    options.add_argument(
        "--onnx-file",
        metavar="FILE",
        default=FP32_FILE,
        help=f"with --backend onnx, the graph to run, e.g. {INT8_FILE} (default: {FP32_FILE})",
    )
    return options


def _add_prune(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    prune = commands.add_parser(
        "prune",
        parents=parents,
        help="keep only the sentences of a context that are relevant to a question",
        description="Keep only the sentences of each context that are relevant to its question.",
        epilog=PRUNE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = prune.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--question", metavar="TEXT", help="prune the context in FILE for this question"
    )
    source.add_argument(
        "--input", metavar="JSONL", help="prune the question/context pair of each line (- stdin)"
    )
    prune.add_argument(
        "context", nargs="?", metavar="FILE", help="the context for --question (default, -: stdin)"
    )
    prune.add_argument(
        "--threshold",
        type=_probability,
        metavar="P",
        help="keep a sentence whose keep-probability exceeds this (default: the model's)",
    )
    prune.add_argument(
        "--max-tokens",
        type=_token_budget,
        metavar="N",
        help="a token budget: of the sentences above the threshold, keep the most probable that "
        "fit N tokens of the model's tokenizer (adds kept_tokens to JSON results)",
    )
    _output_options(prune, "the full result")
    prune.set_defaults(handler=_prune)


def _output_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")
    parser.add_argument(
        "--output",
        metavar="JSONL",
        default="-",
        help="where the --input results go, written atomically (default, -: stdout)",
    )


def _prune(args: argparse.Namespace) -> int:
    _check_prune_mode(args)
    model_path = _model_path(args.model)
    options: Options = {
        "threshold": args.threshold,
        "max_tokens": args.max_tokens,
        "batch_size": args.batch_size,
        "show_progress_bar": False,
    }
    if args.question is not None:
        return _prune_text(args, model_path, options)
    return _prune_jsonl(args, model_path, options)


def _check_prune_mode(args: argparse.Namespace) -> None:
    """Refuse the options of the other mode: argparse cannot tie them to --question or --input."""
    if args.input is not None and args.context is not None:
        raise CliError("a context FILE goes with --question; with --input, contexts are in JSONL")
    if args.input is not None and args.json:
        raise CliError("--json goes with --question; --input always writes JSON lines")
    if args.question is not None and args.output != "-":
        raise CliError("--output goes with --input; --question prints to stdout")


def _prune_text(args: argparse.Namespace, model_path: str, options: Options) -> int:
    context = _read_text(args.context or "-")
    model = _load_model(model_path, args)
    try:
        result = model.process(args.question, context, **options)
    except (ValueError, TypeError) as exc:
        raise CliError(f"cannot prune: {exc}", EXIT_INVALID_INPUT) from None
    print(json.dumps(result) if args.json else result["pruned_context"])
    return EXIT_OK


def _prune_jsonl(args: argparse.Namespace, model_path: str, options: Options) -> int:
    def prune_batch(
        model: PruningEncoder, batch: list[tuple[int, dict[str, Any]]], invalid: _InvalidLines
    ) -> Iterator[dict[str, Any]]:
        return _prune_batch(model, batch, options, invalid)

    return _map_jsonl(args, model_path, "Pruning", PRUNE_FIELDS, args.batch_size, prune_batch)


_Transform = Callable[
    [PruningEncoder, list[tuple[int, dict[str, Any]]], "_InvalidLines"], Iterable[dict[str, Any]]
]


def _map_jsonl(
    args: argparse.Namespace,
    model_path: str,
    desc: str,
    fields: dict[str, str],
    chunk_size: int,
    transform: _Transform,
) -> int:
    """Write ``transform``'s records for the valid --input lines, ``chunk_size`` at a time."""
    invalid = _InvalidLines("<stdin>" if args.input == "-" else args.input)
    # The output is opened before the model loads, to fail fast on a path that cannot be written.
    with _open_input(args.input) as source, _open_output(args.output) as out:
        model = _load_model(model_path, args)
        lines = _progress(source, args.input, desc, quiet=args.quiet)
        with logging_redirect_tqdm(loggers=[logging.getLogger(__package__)], tqdm_class=tqdm):
            for chunk in _chunks(_records(lines, invalid, fields), chunk_size):
                for record in transform(model, chunk, invalid):
                    out.write(json.dumps(record) + "\n")
                out.flush()
    return EXIT_INVALID_INPUT if invalid.count else EXIT_OK


class _InvalidLines:
    """Reports invalid input lines as ``source:line: reason`` and counts them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.count = 0

    def report(self, number: int, reason: str) -> None:
        logger.error("%s:%d: %s", self.source, number, reason)
        self.count += 1


def _records(
    lines: Iterable[bytes], invalid: _InvalidLines, fields: dict[str, str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The valid records with their line numbers; blank lines are skipped, invalid ones reported."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = _parse_record(line, fields)
        except ValueError as exc:
            invalid.report(number, str(exc))
            continue
        yield number, record


def _parse_record(line: bytes, fields: dict[str, str]) -> dict[str, Any]:
    """The JSON object on one input line, with ``fields`` (name → "a string" or "an array of
    strings"); raises ValueError saying what is wrong with it."""
    try:
        record = json.loads(line)
    except ValueError as exc:  # not JSON, or not UTF-8
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {JSON_TYPES[type(record)]}")
    for field, kind in fields.items():
        if field not in record:
            raise ValueError(f"missing field {field!r}")
        value = record[field]
        if kind == "a string":
            valid = isinstance(value, str)
        else:
            valid = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not valid:
            got = JSON_TYPES[type(value)]
            if isinstance(value, list):
                got = "an array with " + ", ".join(sorted({JSON_TYPES[type(v)] for v in value}))
            raise ValueError(f"field {field!r} must be {kind}, got {got}")
    return record


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _prune_batch(
    model: PruningEncoder,
    batch: list[tuple[int, dict[str, Any]]],
    options: Options,
    invalid: _InvalidLines,
) -> Iterator[dict[str, Any]]:
    """Each record of the batch with its results added, in order."""
    try:
        results = _prune_records(model, [record for _, record in batch], options)
    except (ValueError, TypeError):
        # One record the model refuses (an overlong question, text that is not valid Unicode)
        # fails the whole call: redo the batch record by record to skip just that one.
        for number, record in batch:
            try:
                yield {**record, **_prune_records(model, [record], options)[0]}
            except (ValueError, TypeError) as exc:
                invalid.report(number, f"cannot prune: {exc}")
        return
    for (_, record), result in zip(batch, results, strict=True):
        yield {**record, **result}


def _prune_records(
    model: PruningEncoder, records: list[dict[str, Any]], options: Options
) -> list[dict[str, Any]]:
    questions = [record["question"] for record in records]
    contexts = [record["context"] for record in records]
    results: list[dict[str, Any]] = model.process(questions, contexts, **options)
    return results


RANK_EPILOG = f"""\
examples:
  {PROG} rank --query "Who wrote Hamlet?" documents.txt
  {PROG} rank --query "Who wrote Hamlet?" --top-k 3 --json documents.txt
  {PROG} rank --input queries.jsonl --output ranked.jsonl

With --query, FILE (or stdin, -) holds one document per line (blank lines are skipped); the
output is one line per document, best first: score, document number (from 1), document.
Each --input line is a JSON object with "query" (a string) and "documents" (an array of
strings); its output line is the same object plus "ranking": [{{"corpus_id": ..., "score":
...}}, ...], best first. An invalid line is reported as FILE:LINE on stderr and skipped; the exit
status is then 1.
"""


def _add_rank(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    rank = commands.add_parser(
        "rank",
        parents=parents,
        help="sort documents by relevance to a query (a cross-encoder reranker)",
        description="Sort documents by relevance to a query, best first.",
        epilog=RANK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = rank.add_mutually_exclusive_group(required=True)
    source.add_argument("--query", metavar="TEXT", help="rank the documents in FILE for this")
    source.add_argument(
        "--input", metavar="JSONL", help="rank the documents of each line for its query (- stdin)"
    )
    rank.add_argument(
        "documents", nargs="?", metavar="FILE", help="one document per line (default, -: stdin)"
    )
    rank.add_argument(
        "--top-k", type=_positive_int, metavar="K", help="keep the K best documents only"
    )
    _output_options(rank, "the ranking")
    rank.set_defaults(handler=_rank)


def _rank(args: argparse.Namespace) -> int:
    if args.input is not None and (args.documents is not None or args.json):
        raise CliError("FILE and --json go with --query; --input always writes JSON lines")
    if args.query is not None and args.output != "-":
        raise CliError("--output goes with --input; --query prints to stdout")
    model_path = _model_path(args.model)
    options: Options = {"top_k": args.top_k, "batch_size": args.batch_size}
    if args.query is not None:
        documents = [
            line for line in _read_text(args.documents or "-").splitlines() if line.strip()
        ]
        model = _load_model(model_path, args)
        try:
            ranking = model.rank(args.query, documents, return_documents=True, **options)
        except ValueError as exc:
            raise CliError(f"cannot rank: {exc}", EXIT_INVALID_INPUT) from None
        if args.json:
            print(json.dumps(ranking))
        else:
            for entry in ranking:
                print(f"{entry['score']:.4f}\t{entry['corpus_id'] + 1}\t{entry['text']}")
        return EXIT_OK

    def rank_one(
        model: PruningEncoder, chunk: list[tuple[int, dict[str, Any]]], invalid: _InvalidLines
    ) -> Iterator[dict[str, Any]]:
        [(number, record)] = chunk
        try:
            ranking = model.rank(record["query"], record["documents"], **options)
        except ValueError as exc:
            invalid.report(number, f"cannot rank: {exc}")
            return
        yield {**record, "ranking": ranking}

    # One query per call: rank() already batches a query's documents.
    return _map_jsonl(args, model_path, "Ranking", RANK_FIELDS, 1, rank_one)


def _model_path(given: str | None) -> str:
    return given or DEFAULT_MODEL


def _load_model(path: str, args: argparse.Namespace) -> PruningEncoder:
    if not Path(path).is_dir() and bundle_dir(path) is None:
        raise CliError(f"cannot load a model from {path}: not a directory or a bundled model")
    options = {"backend": args.backend, "file_name": args.onnx_file}
    dtype = None if args.dtype == "float32" else args.dtype
    try:
        return PruningEncoder.from_pretrained(path, device=args.device, dtype=dtype, **options)
    except Exception as exc:  # files, model type, device: every way loading fails ends the run
        logger.debug("Loading %s failed", path, exc_info=True)
        message = " ".join(str(exc).split())
        raise CliError(f"cannot load a model from {path}: {message}") from None


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"cannot read {path}: not UTF-8 ({exc.reason})") from None


@contextlib.contextmanager
def _open_input(path: str) -> Iterator[IO[bytes]]:
    """The JSONL input in bytes, so that a line that is not UTF-8 is one invalid line."""
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    with stream:
        yield stream


@contextlib.contextmanager
def _open_output(path: str) -> Iterator[TextIO]:
    """Stdout for ``-``; else a temporary file beside ``path`` that replaces it only on success."""
    if path == "-":
        yield sys.stdout
        return
    target = Path(path)
    if target.is_dir():
        raise CliError(f"cannot write {path}: it is a folder; give a file name")
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        # "x" rather than tempfile.mkstemp: the file gets the umask's mode, not 0600.
        stream = open(temporary, "x", encoding="utf-8")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _progress(lines: IO[bytes], path: str, desc: str, *, quiet: bool) -> Iterable[bytes]:
    """The lines, with a progress bar on stderr when it is a terminal."""
    show = not quiet and sys.stderr.isatty()
    # Count a regular file's lines for an ETA; a pipe cannot be read twice.
    total = _count_lines(path) if show and os.path.isfile(path) else None
    return tqdm(lines, desc=desc, unit="line", total=total, disable=not show, file=sys.stderr)


def _count_lines(path: str) -> int:
    with open(path, "rb") as stream:
        return sum(1 for _ in stream)


@contextlib.contextmanager
def _console(*, verbose: bool) -> Iterator[None]:
    """Send this package's logs to stderr and, unless verbose, silence Transformers.

    Everything is restored on exit, so that ``main()`` can run in-process (tests, notebooks).
    """
    package = logging.getLogger(__package__)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved_level = package.level
    hf_verbosity, hf_progress = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    package.addHandler(handler)
    package.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(saved_level)
        hf_logging.set_verbosity(hf_verbosity)
        if hf_progress:
            hf_logging.enable_progress_bar()


TRAIN_EPILOG = f"""\
examples:
  {PROG} train configs/minilm-l6-wiki.yaml
  {PROG} train my-config.yaml --set training.max_steps=50 --set loss.ranking_weight=0.05
  {PROG} train configs/minilm-l6-wiki.yaml --resume

Multi-GPU: accelerate launch -m pruning_encoder train CONFIG (or torchrun -m pruning_encoder ...).
"""

EVAL_EPILOG = f"""\
examples:
  {PROG} eval
  {PROG} eval --model runs/x/model --threshold 0.3 --output fanoutqa.json
  {PROG} eval --data data/wiki/heldout.jsonl
  {PROG} eval --model runs/x/model --data test.jsonl --tune-data val.jsonl --output m.json

Without --data: the FanOutQA validation benchmark (the validation half of the FanOutQA dev split
over the Wikipedia summaries), built on the fly from the installed data packages:
  {{install}}
Ranking (MRR@10, nDCG@10) of the model, BM25 and the untrained backbone as a bi-encoder; pruning
(answer kept, distractor and evidence characters removed, sentence F2) of the model, keep-all,
keep-first-sentence and the bi-encoder's sentence similarity at the model's answer-kept rate
(its threshold is the highest that keeps the answers at least as often as the model does).

With --data: ranking and pruning metrics (sentence precision/recall/F1/F2, answer kept,
characters removed) on those records, for the model and the same baselines, the bi-encoder at
a fixed threshold (or one chosen for F2 on --tune-data).
"""


def _add_train(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
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
    from .dataset import DataError
    from .evaluation import format_table
    from .train import train
    from .train_config import ConfigError, load_train_config

    try:
        config = load_train_config(args.config, args.overrides)
        metrics = train(config, resume=args.resume)
    except (ConfigError, DataError) as error:
        raise CliError(str(error)) from None
    output = Path(config.training["output_dir"])
    if "eval" in metrics:
        print(format_table(metrics["eval"]))
    print(f"model: {output / 'model'}  threshold: {metrics['default_threshold']:.2f}")
    return EXIT_OK


def _add_eval(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    from . import wiki_data

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
        "--threshold", type=_probability, metavar="P", help="keep threshold (default: the model's)"
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
    evaluate.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from .dataset import DataError, load_records
    from .evaluation import choose_bi_encoder_threshold, evaluate, format_table

    if args.data is None:
        return _eval_fanoutqa(args)
    try:
        records = load_records(args.data)
        tune = load_records(args.tune_data) if args.tune_data else None
    except (OSError, DataError) as error:
        raise CliError(str(error)) from None
    model = _load_model(_model_path(args.model), args)
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
    _write_report(args.output, report)
    return EXIT_OK


def _eval_fanoutqa(args: argparse.Namespace) -> int:
    """``eval`` without ``--data``: the FanOutQA validation benchmark, built from the sources."""
    from .benchmark import evaluate_fanoutqa, load_fanoutqa_validation
    from .evaluation import format_table

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
    model = _load_model(_model_path(args.model), args)
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
    _write_report(args.output, report)
    return EXIT_OK


def _bi_encoder(args: argparse.Namespace, model: PruningEncoder) -> str | None:
    """``--bi-encoder``, else the model's backbone when it resolves offline; None without
    baselines."""
    if args.no_baselines:
        return None
    if args.bi_encoder is not None:
        return str(args.bi_encoder)
    base = model.config.base_model_name_or_path
    with contextlib.suppress(ImportError):
        return resolve_model_path(base) if base else None
    return None


def _write_report(path: str | None, report: dict[str, Any]) -> None:
    if path:
        with _open_output(path) as out:
            out.write(json.dumps(report, indent=2) + "\n")


def _add_build_data(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    from . import wiki_data

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
    from .wiki_data import run

    try:
        return run(args)
    except FileNotFoundError as error:
        raise CliError(str(error)) from None


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


def _add_export(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
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
    model = _load_model(_model_path(args.model), args)
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


def _add_convert(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
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


SERVE_EPILOG = f"""\
examples:
  {PROG} serve --model my-model --host 127.0.0.1 --port 8080
  curl -s localhost:8080/rerank -H 'Content-Type: application/json' \\
      -d '{{"query": "Who wrote Hamlet?", "texts": ["It rains.", "Shakespeare wrote it."]}}'

POST /rerank takes text-embeddings-inference's schema (query, texts, raw_scores, return_text,
truncate) plus prune and threshold; POST /prune takes question, contexts and threshold. GET
/health, GET /info, and the OpenAPI schema at /docs and /openapi.json. It needs
pip install 'pruning-encoder[serve]'.
"""


def _add_serve(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        parents=parents,
        help="serve /rerank (TEI schema) and /prune over HTTP",
        description="Serve the model over HTTP (FastAPI + uvicorn).",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.add_argument(
        "--max-texts",
        type=_positive_int,
        default=256,
        metavar="N",
        help="most texts per request; more is answered 413 (default: 256)",
    )
    serve.add_argument(
        "--max-chars",
        type=_positive_int,
        default=2_000_000,
        metavar="N",
        help="most characters per request; more is answered 413 (default: 2000000)",
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .server import create_app
    except ImportError as error:
        raise CliError(f"{error}: pip install 'pruning-encoder[serve]'") from None
    model = _load_model(_model_path(args.model), args)
    app = create_app(
        model, model_id=_model_path(args.model), max_texts=args.max_texts, max_chars=args.max_chars
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="debug" if args.verbose else "info")
    return EXIT_OK


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_token_budget = _int_at_least(0)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value
