"""What several subcommands share: exit codes, ``CliError``, the option groups, loading the
model, reading input and writing output atomically, the progress bar and the console."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TextIO

from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

from ..bundled import DEFAULT_MODEL, bundle_dir
from ..checks import check_batch_size, check_max_tokens, check_threshold
from ..onnx_backend import FP32_FILE, INT8_FILE
from ..pruning_encoder import BACKENDS, PruningEncoder
from ..saving import atomic_file

logger = logging.getLogger(__name__)

# The logger every module of the package logs under (``__package__`` here is this subpackage).
PACKAGE = "pruning_encoder"

PROG = "pruning-encoder"
EXIT_OK = 0
EXIT_INVALID_INPUT = 1
EXIT_USAGE = 2

Options = dict[str, Any]

COLOR_CHOICES = ("auto", "always", "never")
# Black on yellow, bold: readable on dark and light terminals alike.
ANSI_MARK = "\x1b[1;30;43m"
ANSI_RESET = "\x1b[0m"


class CliError(Exception):
    """A failure reported as one ``error: ...`` line on stderr, without a traceback.

    Args:
        message: What went wrong, on one line.
        exit_code: The exit status to end with.
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def console_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "-v", "--verbose", action="store_true", help="show debug logs and Transformers' messages"
    )
    options.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return options


def model_choice() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--model",
        metavar="DIR",
        default=DEFAULT_MODEL,
        help=f"a saved PruningEncoder directory or a bundled model (default: {DEFAULT_MODEL})",
    )
    return options


def model_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False, parents=[model_choice()])
    options.add_argument(
        "--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available, else cpu)"
    )
    options.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16", "auto"),
        default="auto",
        help="precision of inference: auto is bfloat16 where the device multiplies it natively "
        "(CPUs with avx512_bf16 or AMX, CUDA GPUs from Ampere on), else float32, with float32 "
        "weights kept; bfloat16/float16 convert the encoder's weights (elsewhere than on such "
        "devices, bf16 is emulated and slower); float32 throughout (default: auto)",
    )
    options.add_argument(
        "--batch-size",
        type=_batch_size,
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


def output_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")
    parser.add_argument(
        "--output",
        metavar="JSONL",
        default="-",
        help="where the --input results go, written atomically (default, -: stdout)",
    )


def chosen_model_path(given: str | None) -> str:
    return given or DEFAULT_MODEL


def load_model(path: str, args: argparse.Namespace) -> PruningEncoder:
    if not Path(path).is_dir() and bundle_dir(path) is None:
        raise CliError(f"cannot load a model from {path}: not a directory or a bundled model")
    options = {"backend": args.backend, "file_name": args.onnx_file}
    try:
        return PruningEncoder.from_pretrained(path, device=args.device, dtype=args.dtype, **options)
    except Exception as exc:  # files, model type, device: every way loading fails ends the run
        logger.debug("Loading %s failed", path, exc_info=True)
        message = " ".join(str(exc).split())
        raise CliError(f"cannot load a model from {path}: {message}") from None


def read_text(path: str) -> str:
    """The text of a file (or stdin, ``-``) as it is: line ends are not translated (as stdin's
    are not), so ``\\r`` stays ``\\r``."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8", newline="") as stream:
            return stream.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"cannot read {path}: not UTF-8 ({exc.reason})") from None


@contextlib.contextmanager
def open_input(path: str) -> Iterator[IO[bytes]]:
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
def open_output(path: str) -> Iterator[TextIO]:
    """Stdout for ``-``; else a temporary file beside ``path`` that replaces it only on success."""
    if path == "-":
        yield sys.stdout
        return
    with contextlib.ExitStack() as stack:
        try:
            temporary = stack.enter_context(atomic_file(path))
            # "x" rather than tempfile.mkstemp: the file gets the umask's mode, not 0600.
            stream = stack.enter_context(open(temporary, "x", encoding="utf-8"))
        except IsADirectoryError:
            raise CliError(f"cannot write {path}: it is a folder; give a file name") from None
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc.strerror}") from None
        yield stream
        stream.flush()


def read_records_option(path: str, option: str = "--data") -> list[Any]:
    """The training-format records in the file an option names.

    Raises:
        CliError: The file cannot be read (naming the option) or holds a malformed record.
    """
    from ..data.records import DataError, load_records

    try:
        return load_records(path)
    except OSError as error:
        raise CliError(f"cannot read {option} {path}: {error.strerror or error}") from None
    except DataError as error:
        raise CliError(str(error)) from None


def need_matplotlib() -> None:
    """Refuse ``--plot`` before any work when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CliError("--plot needs matplotlib: pip install 'pruning-encoder[plot]'") from None


def progress(lines: IO[bytes], path: str, desc: str, *, quiet: bool) -> Iterable[bytes]:
    """The lines, with a progress bar on stderr when it is a terminal."""
    show = not quiet and sys.stderr.isatty()
    # Count a regular file's lines for an ETA; a pipe cannot be read twice.
    total = _count_lines(path) if show and os.path.isfile(path) else None
    return tqdm(lines, desc=desc, unit="line", total=total, disable=not show, file=sys.stderr)


def _count_lines(path: str) -> int:
    with open(path, "rb") as stream:
        return sum(1 for _ in stream)


@contextlib.contextmanager
def console(*, verbose: bool) -> Iterator[None]:
    """Send this package's logs to stderr and, unless verbose, silence Transformers.

    Everything is restored on exit, so that ``main()`` can run in-process (tests, notebooks).
    """
    package = logging.getLogger(PACKAGE)
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


def use_color(choice: str, stream: TextIO) -> bool:
    """``--color``: always, never, or (auto) when ``stream`` is a terminal, ``NO_COLOR`` is
    unset and ``TERM`` is not ``dumb`` (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    interactive = stream.isatty()
    return interactive and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def int_at_least(minimum: int) -> Callable[[str], int]:
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


positive_int = int_at_least(1)


def rule(check: Callable[[Any], Any], kind: type[int] | type[float]) -> Callable[[str], Any]:
    """An argparse type: the text read as ``kind``, then checked by ``check``, a rule of
    :mod:`pruning_encoder.checks` (the Python API's and the service's, with their words)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
        try:
            return check(value)
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


probability = rule(check_threshold, float)
token_budget = rule(check_max_tokens, int)
_batch_size = rule(check_batch_size, int)
