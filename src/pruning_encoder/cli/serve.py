"""``serve``: serve /rerank (TEI schema) and /prune over HTTP."""

from __future__ import annotations

import argparse
from typing import Any

from .common import EXIT_OK, PROG, CliError, chosen_model_path, load_model, positive_int

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


def add_serve(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
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
        type=positive_int,
        default=256,
        metavar="N",
        help="most texts per request; more is answered 413 (default: 256)",
    )
    serve.add_argument(
        "--max-chars",
        type=positive_int,
        default=2_000_000,
        metavar="N",
        help="most characters per request; more is answered 413 (default: 2000000)",
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..server import create_app
    except ImportError as error:
        raise CliError(f"{error}: pip install 'pruning-encoder[serve]'") from None
    model = load_model(chosen_model_path(args.model), args)
    app = create_app(
        model,
        model_id=chosen_model_path(args.model),
        max_texts=args.max_texts,
        max_chars=args.max_chars,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="debug" if args.verbose else "info")
    return EXIT_OK
