"""``label`` and ``write-questions``: training data from a language model.

``label`` turns question/context lines into training records whose relevant spans are the
sentences a chat model names; ``write-questions`` writes the questions that passages answer, in
``label``'s input format. Both talk to any OpenAI-compatible endpoint (``--base-url``) or start
llama.cpp on a local GGUF file (``--gguf``), keep every reply in a cache beside the output (a
rerun sends only the requests it has no reply for), and write what failed, with the reason, to
an errors file instead of stopping.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .common import (
    EXIT_INVALID_INPUT,
    EXIT_OK,
    PACKAGE,
    PROG,
    CliError,
    int_at_least,
    open_input,
    open_output,
    positive_int,
)

if TYPE_CHECKING:
    from ..data.llm_client import ChatClient
    from ..data.llm_jobs import JobStats, Outcome

INSTALL = "pip install 'pruning-encoder[label]'"

LABEL_EPILOG = f"""\
examples:
  {PROG} label questions.jsonl --output labelled.jsonl --gguf model.gguf
  {PROG} label questions.jsonl --output labelled.jsonl --concurrency 4 \\
      --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct
  OPENAI_API_KEY=... {PROG} label questions.jsonl --output labelled.jsonl \\
      --base-url https://api.openai.com/v1 --model gpt-4o-mini --api-key-env OPENAI_API_KEY

Each input line is a JSON object with "question" and "context" (several documents joined by
newlines are one context); "id" and "answers" are carried into the record and other fields into
its "meta". Each output line is a training record: "texts" holds the context, "relevant_spans"
the sentences the model named (whole sentences of the built-in splitter), "labels" 1.0 if it
named any, else 0.0, and "meta" the model's answer and whether that answer occurs in the named
sentences ("answer_in_labels"). An item that fails (invalid line, no valid reply within
--retries) goes to the errors file with its line number and reason; the exit status is then 1.
Replies are cached by request in the --cache file: run the same command again to resume.
Needs {INSTALL}.
"""

QUESTIONS_EPILOG = f"""\
examples:
  {PROG} write-questions passages.jsonl --output questions.jsonl --gguf model.gguf
  {PROG} write-questions passages.jsonl --output questions.jsonl --per-passage 5 \\
      --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct

Each input line is a JSON object with "context" (a passage) and optionally "title". Each output
line is one question in the input format of `{PROG} label`: "question", "context",
"source_sentence" (the number, from 1, of the sentence it was written from), "source_span"
(that sentence's [start, end] characters) and the passage's other fields. Questions that copy
--max-copied-words consecutive words of the passage, and repeats, are dropped and listed in the
errors file. Replies are cached as with label. Needs {INSTALL}.
"""


def add_label(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    label = commands.add_parser(
        "label",
        parents=parents,
        help="label the sentences that answer each question, with a language model",
        description="Write training records whose relevant sentences a chat model chose.",
        epilog=LABEL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _job_options(label, "question/context lines")
    label.add_argument(
        "--require-answer-match",
        action="store_true",
        help="treat a reply whose answer does not occur in the sentences it names as invalid "
        "(asked again, then a failure)",
    )
    label.set_defaults(handler=_label)

    questions = commands.add_parser(
        "write-questions",
        parents=parents,
        help="write questions that passages answer, with a language model",
        description="Write questions that passages answer, each labelled at its sentence.",
        epilog=QUESTIONS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _job_options(questions, "passages")
    questions.add_argument(
        "--per-passage",
        type=positive_int,
        default=3,
        metavar="N",
        help="questions to ask for each passage (default: 3)",
    )
    questions.add_argument(
        "--max-copied-words",
        type=int_at_least(0),
        default=6,
        metavar="N",
        help="drop a question that shares N consecutive words with its passage; 0: keep all "
        "(default: 6)",
    )
    questions.set_defaults(handler=_write_questions)


def _job_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("input", metavar="JSONL", help=f"the {what} (- for stdin)")
    parser.add_argument(
        "--output", required=True, metavar="JSONL", help="where the results go, atomically"
    )
    parser.add_argument(
        "--errors",
        metavar="JSONL",
        help="where failures go, with line and reason, written even when empty (default: "
        "OUTPUT's name + .errors.jsonl)",
    )
    parser.add_argument(
        "--cache",
        metavar="JSONL",
        help="the replies kept across runs (default: OUTPUT's name + .cache.jsonl)",
    )
    parser.add_argument("--no-cache", action="store_true", help="keep no replies")
    llm = parser.add_argument_group("the language model: --gguf, or --base-url with --model")
    source = llm.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--gguf", metavar="FILE", help="start llama.cpp on this GGUF model, on 127.0.0.1"
    )
    source.add_argument(
        "--base-url",
        metavar="URL",
        help="an OpenAI-compatible API root, e.g. http://localhost:8080/v1",
    )
    llm.add_argument("--model", metavar="NAME", help="the model name to request (--base-url)")
    llm.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="the environment variable that holds the API key (--base-url)",
    )
    llm.add_argument(
        "--no-json-schema",
        action="store_true",
        help="do not send response_format (for servers that refuse JSON-schema output)",
    )
    llm.add_argument(
        "--threads", type=positive_int, metavar="N", help="llama.cpp's CPU threads (--gguf)"
    )
    llm.add_argument(
        "--ctx-size",
        type=positive_int,
        default=4096,
        metavar="N",
        help="tokens of context per request, prompt and reply (--gguf; default: 4096)",
    )
    job = parser.add_argument_group("the job")
    job.add_argument(
        "--concurrency",
        type=positive_int,
        default=1,
        metavar="N",
        help="requests at once (with --gguf, llama.cpp's slots; default: 1)",
    )
    job.add_argument(
        "--retries",
        type=int_at_least(0),
        default=2,
        metavar="N",
        help="further attempts for an item whose reply is invalid or missing (default: 2)",
    )
    job.add_argument(
        "--timeout",
        type=_seconds,
        default=300.0,
        metavar="S",
        help="seconds to wait for a reply (default: 300)",
    )
    job.add_argument(
        "--max-tokens",
        type=positive_int,
        default=256,
        metavar="N",
        help="the most tokens of a reply (default: 256)",
    )
    job.add_argument(
        "--seed", type=int, default=0, metavar="N", help="the sampling seed (default: 0)"
    )


def _label(args: argparse.Namespace) -> int:
    try:
        from ..data.llm_labels import LLMLabeller
    except ImportError as error:
        raise CliError(f"{error}: {INSTALL}") from None

    def run(client: ChatClient, items: list[Any]) -> tuple[Iterator[Outcome], JobStats]:
        labeller = LLMLabeller(
            client,
            retries=args.retries,
            require_answer_match=args.require_answer_match,
            concurrency=args.concurrency,
        )
        return labeller.label(items, show_progress_bar=_show_progress(args)), labeller.stats

    return _run(args, run, "labelled")


def _write_questions(args: argparse.Namespace) -> int:
    try:
        from ..data.llm_questions import QuestionWriter
    except ImportError as error:
        raise CliError(f"{error}: {INSTALL}") from None

    def run(client: ChatClient, items: list[Any]) -> tuple[Iterator[Outcome], JobStats]:
        writer = QuestionWriter(
            client,
            per_passage=args.per_passage,
            max_copied_words=args.max_copied_words,
            retries=args.retries,
            concurrency=args.concurrency,
        )
        return writer.write(items, show_progress_bar=_show_progress(args)), writer.stats

    return _run(args, run, "passages with questions")


Job = Callable[["ChatClient", list[Any]], tuple[Iterator["Outcome"], "JobStats"]]


def _run(args: argparse.Namespace, run: Job, done: str) -> int:
    """Read the input, run the job, write the outputs and failures, print the summary; exit
    status 1 when an item gave no output."""
    from ..data.llm_client import LLMError, LLMSetupError

    if args.base_url and not args.model:
        raise CliError("--base-url needs --model NAME")
    output = Path(args.output)
    errors = args.errors or str(output.with_name(f"{output.stem}.errors.jsonl"))
    numbers, items, invalid = _read_lines(args.input)
    written, reported = 0, len(invalid)
    in_labels: list[bool] = []
    with (
        open_output(args.output) as out,
        open_output(errors) as errors_out,
        _client(args, output) as client,
        logging_redirect_tqdm(loggers=[logging.getLogger(PACKAGE)], tqdm_class=tqdm),
    ):
        for number, reason in invalid:
            errors_out.write(json.dumps({"line": number, "reason": reason}) + "\n")
        outcomes, stats = run(client, items)
        try:
            for outcome in outcomes:
                item = items[outcome.index]
                for record in outcome.outputs:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    found = record.get("meta", {}).get("llm", {}).get("answer_in_labels")
                    if found is not None:
                        in_labels.append(found)
                written += len(outcome.outputs)
                for failure in outcome.failures:
                    row = {"line": numbers[outcome.index], **failure, "input": item}
                    errors_out.write(json.dumps(row, ensure_ascii=False) + "\n")
                reported += len(outcome.failures)
        except LLMSetupError as error:
            raise CliError(f"{error} (nothing written)") from None
        except LLMError as error:  # not expected: the jobs report these as failures
            raise CliError(str(error)) from None
    summary = stats.summary(done) + f"; {written} lines written to {args.output}"
    if invalid:
        summary += f"; {len(invalid)} input line(s) not JSON objects"
    if in_labels:
        summary += f"; the answer inside the labels in {sum(in_labels)} of {len(in_labels)}"
    if reported:
        summary += f"; {reported} line(s) with reasons in {errors}"
    print(f"{args.command}: {summary}", file=sys.stderr)
    return EXIT_INVALID_INPUT if stats.failed or invalid else EXIT_OK


def _read_lines(path: str) -> tuple[list[int], list[Any], list[tuple[int, str]]]:
    """The line numbers and JSON objects of the input, and the lines that are not objects."""
    numbers: list[int] = []
    items: list[Any] = []
    invalid: list[tuple[int, str]] = []
    with open_input(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as error:  # not JSON, or not UTF-8
                invalid.append((number, f"not valid JSON: {error}"))
                continue
            if not isinstance(item, dict):
                invalid.append((number, f"expected a JSON object, got {line[:60]!r}"))
                continue
            numbers.append(number)
            items.append(item)
    return numbers, items, invalid


@contextlib.contextmanager
def _client(args: argparse.Namespace, output: Path) -> Iterator[ChatClient]:
    """The chat client of the job's options; with --gguf, llama.cpp runs until the end."""
    from ..data.llm_client import ChatClient, LlamaServer, ResponseCache

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise CliError(f"--api-key-env: the environment variable {args.api_key_env} is unset")
    base_url: str | Callable[[], str] = args.base_url
    model = args.model
    server = None
    if args.gguf:
        try:
            server = LlamaServer(
                args.gguf,
                parallel=args.concurrency,
                ctx_size=args.ctx_size,
                threads=args.threads,
                verbose=args.verbose,
            )
        except (ImportError, OSError, ValueError) as error:
            raise CliError(str(error)) from None
        base_url = server.url  # llama.cpp loads at the first reply that is not in the cache
        gguf = Path(args.gguf)
        model = args.model or f"{gguf.name} ({gguf.stat().st_size} bytes)"
    cache = None
    if not args.no_cache:
        cache_path = args.cache or str(output.with_name(f"{output.stem}.cache.jsonl"))
        try:
            cache = ResponseCache(cache_path)
        except OSError as error:
            raise CliError(f"cannot read the cache {cache_path}: {error.strerror}") from None
    with contextlib.ExitStack() as stack:
        if server is not None:
            stack.enter_context(server)
        if cache is not None:
            stack.callback(cache.close)
        client = ChatClient(
            base_url,
            model=model,
            api_key=api_key,
            cache=cache,
            timeout=args.timeout,
            max_tokens=args.max_tokens,
            seed=args.seed,
            json_schema=not args.no_json_schema,
            connections=args.concurrency,
        )
        with client:
            yield client


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def _show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()
