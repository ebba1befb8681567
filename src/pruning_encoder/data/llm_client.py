"""A chat client for any OpenAI-compatible endpoint, with a resumable response cache, and a
llama.cpp server started in this process (``xllamacpp``) for a local GGUF file.

The client speaks ``POST {base_url}/chat/completions`` (OpenAI, vLLM, llama.cpp's server, Ollama
and hosted APIs all do), at temperature 0 with a fixed seed, and asks for a reply constrained by
a JSON schema (``response_format: {"type": "json_schema", ...}``) unless told the server lacks
it. Replies are cached by a hash of the whole request (model, messages, schema, sampling
options), so a job run again sends only the requests whose replies it does not have.

Needs ``pip install 'pruning-encoder[label]'`` (httpx; xllamacpp for a local GGUF).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

logger = logging.getLogger(__name__)

INSTALL = "pip install 'pruning-encoder[label]'"
GGUF_MAGIC = b"GGUF"
# Replies the same request may not get again: rate limits and server-side failures.
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
# The endpoint, the key or the model name is wrong: every request would fail alike.
SETUP_STATUS = frozenset({401, 403, 404})


class LLMError(Exception):
    """A request that got no usable reply.

    Args:
        message: What went wrong, on one line.
        retryable: Whether sending the same request again may succeed (a timeout, a lost
            connection, HTTP 429 or 5xx); ``False`` for a request the server refused (HTTP 400,
            e.g. a prompt longer than the model's context).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class LLMSetupError(LLMError):
    """The endpoint, API key or model name is wrong (HTTP 401, 403, 404): the job cannot run."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class ResponseCache:
    """Replies by request, kept in an append-only JSONL file (``{"key": ..., "content": ...}``).

    The file is read when the cache opens and each new reply is appended and flushed at once,
    so a job stopped at any point keeps every reply it received. A line that does not parse
    (the last one of a job that was killed mid-write) is skipped with a warning.

    Args:
        path: The JSONL file; created, with its folder, at the first reply.

    Raises:
        OSError: The file cannot be read; from :meth:`put`, it cannot be written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._replies: dict[str, str] = {}
        self._lock = threading.Lock()
        skipped = 0
        if self.path.exists():
            with open(self.path, encoding="utf-8") as lines:
                for line in lines:
                    try:
                        row = json.loads(line)
                        self._replies[row["key"]] = str(row["content"])
                    except (ValueError, KeyError, TypeError):
                        skipped += line.strip() != ""
        if skipped:
            logger.warning("%s: skipped %d unreadable cache line(s)", self.path, skipped)
        self._file: TextIO | None = None  # opened by the first put()

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, key: str) -> str | None:
        """The cached reply to the request of ``key``, or None."""
        return self._replies.get(key)

    def put(self, key: str, content: str) -> None:
        """Store a reply: in memory and, flushed, at the end of the file."""
        line = json.dumps({"key": key, "content": content}, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (close())
            self._replies[key] = content
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def request_key(body: dict[str, Any]) -> str:
    """The cache key of a request: the SHA-256 of its canonical JSON (every field counts)."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ChatClient:
    """Chat completions from an OpenAI-compatible endpoint, at temperature 0 with a fixed seed.

    Thread-safe: one client serves every worker of a job.

    Args:
        base_url: The API root as OpenAI clients take it, e.g. ``http://localhost:8080/v1``;
            requests go to ``{base_url}/chat/completions``. Or a function that returns it,
            called before the first request (e.g. :meth:`LlamaServer.url`, which starts the
            server only when a reply is not in the cache).
        model: The model name sent with each request (part of the cache key).
        api_key: Sent as ``Authorization: Bearer ...`` when given.
        cache: Where replies are kept across runs; None keeps none.
        timeout: Seconds to wait for a connection and for each read of the reply.
        max_tokens: The most tokens a reply may have.
        seed: The sampling seed; the temperature is 0.
        json_schema: Send each request's schema as ``response_format`` (llama.cpp, vLLM,
            OpenAI); ``False`` for servers that refuse it (the prompt still asks for the JSON).
        connections: The most requests in flight at once (the job's concurrency).

    Attributes:
        requests: Requests sent so far (each retry counts).
        cache_hits: Replies served from the cache so far.
    """

    def __init__(
        self,
        base_url: str | Callable[[], str],
        *,
        model: str,
        api_key: str | None = None,
        cache: ResponseCache | None = None,
        timeout: float = 120.0,
        max_tokens: int = 256,
        seed: int = 0,
        json_schema: bool = True,
        connections: int = 4,
    ) -> None:
        self._base_url = base_url
        self.model = model
        self.cache = cache
        self.max_tokens = max_tokens
        self.seed = seed
        self.json_schema = json_schema
        self.requests = 0
        self.cache_hits = 0
        self._lock = threading.Lock()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def body(self, messages: list[dict[str, str]], schema: dict[str, Any], name: str) -> dict:
        """The request for ``messages``, its reply constrained by ``schema`` (named ``name``)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": 0.0,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }
        if self.json_schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema},
            }
        return body

    def complete(self, body: dict[str, Any]) -> str:
        """The reply's text for the request ``body``: from the cache, else from the endpoint.

        Raises:
            LLMSetupError: HTTP 401, 403 or 404 (wrong URL, key or model).
            LLMError: No reply: a timeout, a lost connection, another HTTP error, or a response
                that is not a chat completion; ``retryable`` says whether to send it again.
        """
        key = request_key(body)
        if self.cache is not None and (cached := self.cache.get(key)) is not None:
            with self._lock:
                self.cache_hits += 1
            return cached
        with self._lock:
            self.requests += 1
        content = self._post(body)
        if self.cache is not None:
            self.cache.put(key, content)
        return content

    def _post(self, body: dict[str, Any]) -> str:
        base_url = self._base_url
        if callable(base_url):
            try:
                base_url = base_url()
            except (RuntimeError, OSError) as error:
                raise LLMSetupError(str(error)) from None
        url = f"{base_url.rstrip('/')}/chat/completions"
        try:
            response = self._http.post(url, json=body)
        except httpx.TimeoutException:
            raise LLMError(f"no reply from {url} in time", retryable=True) from None
        except httpx.HTTPError as error:
            raise LLMError(f"cannot reach {url}: {error}", retryable=True) from None
        if response.status_code != 200:
            message = f"HTTP {response.status_code} from {url}: {_error_text(response)}"
            if response.status_code in SETUP_STATUS:
                raise LLMSetupError(message)
            raise LLMError(message, retryable=response.status_code in RETRYABLE_STATUS)
        try:
            choice = response.json()["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMError(
                f"{url} answered HTTP 200 without a chat completion: {response.text[:200]!r}",
                retryable=True,
            ) from None
        if not isinstance(content, str):
            raise LLMError(f"{url} answered without text content", retryable=True)
        if choice.get("finish_reason") == "length":
            # Cut at max_tokens: cached all the same (the same request is cut the same way);
            # the JSON that does not parse is the caller's reason to ask again.
            logger.debug("a reply was cut at max_tokens=%d", self.max_tokens)
        return content


def _error_text(response: httpx.Response) -> str:
    """The server's error message: OpenAI's ``{"error": {"message": ...}}``, else the text."""
    try:
        error = response.json()["error"]
        message = error["message"] if isinstance(error, dict) else error
    except (ValueError, KeyError, TypeError):
        message = response.text
    return " ".join(str(message).split())[:300] or response.reason_phrase


class LlamaServer:
    """llama.cpp's OpenAI-compatible server for a GGUF model, run in this process on loopback.

    The file is checked at once; the model loads at the first :meth:`url` call (so a job whose
    replies are all cached never loads it), and the server (``xllamacpp.Server``, on
    ``127.0.0.1`` and a free port) stops at :meth:`close` or at the end of a ``with`` block.

    Args:
        gguf: The model file.
        parallel: Requests decoded at once (slots); give the job's concurrency.
        ctx_size: Tokens of context per request (prompt and reply); the server holds
            ``ctx_size * parallel``.
        threads: CPU threads (default: llama.cpp's choice). On a machine whose cores are busy
            with other work, fewer threads than cores run much faster (they spin-wait).
        verbose: Keep llama.cpp's own log on stderr.

    Raises:
        ImportError: xllamacpp is not installed.
        FileNotFoundError: ``gguf`` does not exist.
        ValueError: ``gguf`` is not a GGUF file.
    """

    def __init__(
        self,
        gguf: str | Path,
        *,
        parallel: int = 1,
        ctx_size: int = 4096,
        threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        try:
            import xllamacpp
        except ImportError:
            raise ImportError(f"--gguf needs xllamacpp: {INSTALL}") from None
        self.path = Path(gguf)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such model file")
        with open(self.path, "rb") as head:
            if head.read(4) != GGUF_MAGIC:
                raise ValueError(f"{self.path} is not a GGUF file (it does not start with 'GGUF')")
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_parallel = parallel
        params.n_ctx = ctx_size * parallel
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # a free port, chosen by the system: see listening_address
        params.ui = False
        if threads is not None:
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
        if not verbose:
            params.verbosity = -1
        self._params = params
        self._server: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self) -> str:
        """The API root to give :class:`ChatClient` (``http://127.0.0.1:PORT/v1``); the first
        call starts the server.

        Raises:
            RuntimeError: llama.cpp could not load the model (e.g. too little memory for
                ``ctx_size``).
        """
        import xllamacpp

        with self._lock:
            if self._server is None:
                logger.info("Loading %s into llama.cpp", self.path)
                try:
                    self._server = xllamacpp.Server(self._params)
                except RuntimeError as error:
                    message = f"llama.cpp could not start with {self.path}: {error}"
                    raise RuntimeError(message) from None
            return f"{self._server.listening_address}/v1"

    def close(self) -> None:
        """Stop the server, if it started, and free the model."""
        with self._lock:
            self._server = None  # its destructor stops the HTTP server and frees the model
            gc.collect()
