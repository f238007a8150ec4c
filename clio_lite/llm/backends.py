"""LLM backends: one small class per API, all with the same two methods.

A backend turns a :class:`Request` into a :class:`Completion` with one HTTP call and maps the SDK's errors onto two
kinds the runner understands: :class:`RetryableError` (rate limits, timeouts, overloaded or failing servers: worth
another try, after ``retry_after`` seconds when the server said so) and :class:`LLMError` (anything else: a bad
request, a wrong key, a missing model; retrying would not help).

The SDKs' own retries are switched off (``max_retries=0``): the runner retries, with its own backoff and budget, so
every HTTP request is one the runner decided to make.

A backend never stores its API key as a public attribute, so a pipeline's manifest (which records each stage's
public parameters) cannot carry it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

#: HTTP statuses worth retrying: request timeout, conflict, rate limited, Anthropic's "overloaded", 5xx.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class LLMError(Exception):
    """A call that failed and should not be retried (bad request, authentication, unknown model...)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RetryableError(LLMError):
    """A call that failed for a reason that may pass: rate limit, timeout, connection or server error.

    ``retry_after`` is the wait in seconds the server asked for (its ``Retry-After`` header), if any.
    """

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Request:
    """One chat call: a system prompt, one user message, and an optional prefill of the assistant's answer.

    ``prefill`` starts the assistant's turn (Clio's prompts end with ``<answer>`` already written); backends that
    cannot prefill (most OpenAI-compatible servers) append it to the user message as the required start instead.
    """

    prompt: str
    system: str = ""
    prefill: str = ""
    max_tokens: int = 256
    temperature: float = 0.0

    def params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature}


@dataclass(frozen=True)
class Completion:
    """A model's answer and the tokens the server reports it used (``None`` when it reports none)."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Price:
    """Dollars per million input and output tokens, for estimates and dollar budgets."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


class Backend(Protocol):
    """What the runner needs from a backend.

    ``connect()`` makes an SDK client for one run (one event loop); ``complete(client, request)`` makes one call.
    ``kind`` and ``model`` key the cache; ``price`` (or None) turns tokens into dollars.
    """

    kind: str
    model: str
    price: Price | None

    def connect(self) -> Any: ...

    async def complete(self, client: Any, request: Request) -> Completion: ...


def _retry_after(response: Any) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:  # an HTTP date: rare from LLM servers; fall back to the runner's own backoff
        return None


def _map_error(sdk: Any, error: Exception) -> LLMError:
    """The SDK's exception as an :class:`LLMError`, retryable or not. ``sdk`` is the ``openai`` or ``anthropic``
    module: both SDKs share the same exception hierarchy."""
    if isinstance(error, sdk.APITimeoutError):
        return RetryableError(f"timed out: {error}")
    if isinstance(error, sdk.APIConnectionError):
        return RetryableError(f"connection failed: {error}")
    if isinstance(error, sdk.APIStatusError):
        status = error.status_code
        message = f"HTTP {status}: {error.message}"
        if status in RETRYABLE_STATUSES or status >= 500:
            return RetryableError(message, status, _retry_after(error.response))
        return LLMError(message, status)
    if isinstance(error, sdk.APIResponseValidationError | ValueError):
        # A body the SDK could not read (not JSON): the server misbehaved; another try may work.
        return RetryableError(f"malformed response: {type(error).__name__}: {error}")
    return LLMError(f"{type(error).__name__}: {error}")


def _malformed(error: Exception) -> RetryableError:
    # A JSON body without the expected fields (no choices, no content): another try may work.
    return RetryableError(f"malformed response: {type(error).__name__}: {error}")


@dataclass
class OpenAIBackend:
    """Any server speaking OpenAI's chat-completions API: OpenAI, vLLM, llama.cpp's server, Ollama, LM Studio...

    Parameters
    ----------
    model : str
        The model name the server knows.
    base_url : str or None
        The API root, e.g. ``"http://localhost:8000/v1"`` (vLLM) or ``"http://localhost:11434/v1"`` (Ollama);
        ``None`` is OpenAI's.
    api_key_env : str
        The environment variable holding the key. Local servers accept any key; ``"none"`` is sent when unset.
    price : Price or None
        For cost estimates and dollar budgets; ``None`` (a local server) costs nothing.
    timeout : float
        Seconds before a call is abandoned (and retried by the runner).

    Examples
    --------
    >>> backend = OpenAIBackend("llama3.1:8b", base_url="http://localhost:11434/v1")
    >>> backend.kind, backend.model
    ('openai', 'llama3.1:8b')
    """

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    price: Price | None = None
    timeout: float = 60.0
    kind: str = field(default="openai", init=False)

    def connect(self) -> Any:
        try:
            import openai
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("OpenAIBackend needs the openai SDK: pip install 'clio_lite[llm]'") from error
        return openai.AsyncOpenAI(
            api_key=os.environ.get(self.api_key_env) or "none",
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,
        )

    async def complete(self, client: Any, request: Request) -> Completion:
        import openai

        messages = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        prompt = request.prompt
        if request.prefill:
            prompt += f"\n\nBegin your answer with exactly: {request.prefill}"
        messages.append({"role": "user", "content": prompt})
        try:
            response = await client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=request.max_tokens, temperature=request.temperature
            )
        except openai.OpenAIError as error:  # every SDK failure becomes an LLMError, retryable or not
            raise _map_error(openai, error) from error
        except ValueError as error:
            raise _map_error(openai, error) from error
        try:
            text = response.choices[0].message.content or ""
            usage = response.usage
        except (AttributeError, IndexError, TypeError) as error:
            raise _malformed(error) from error
        return Completion(
            text=text,
            input_tokens=getattr(usage, "prompt_tokens", None),
            output_tokens=getattr(usage, "completion_tokens", None),
        )


@dataclass
class AnthropicBackend:
    """Anthropic's Messages API through the ``anthropic`` SDK.

    Parameters
    ----------
    model : str
        E.g. ``"claude-haiku-4-5"``.
    base_url : str or None
        ``None`` is Anthropic's API; a proxy or a test server otherwise.
    api_key_env : str
        The environment variable holding the key.
    price : Price or None
        For cost estimates and dollar budgets.
    timeout : float
        Seconds before a call is abandoned (and retried by the runner).

    Examples
    --------
    >>> backend = AnthropicBackend("claude-haiku-4-5", price=Price(1.0, 5.0))
    >>> backend.kind, round(backend.price.cost(1_000_000, 0), 2)
    ('anthropic', 1.0)
    """

    model: str
    base_url: str | None = None
    api_key_env: str = "ANTHROPIC_API_KEY"
    price: Price | None = None
    timeout: float = 60.0
    kind: str = field(default="anthropic", init=False)

    def connect(self) -> Any:
        try:
            import anthropic
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("AnthropicBackend needs the anthropic SDK: pip install 'clio_lite[llm]'") from error
        return anthropic.AsyncAnthropic(
            api_key=os.environ.get(self.api_key_env) or "none",
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,
        )

    async def complete(self, client: Any, request: Request) -> Completion:
        import anthropic

        messages = [{"role": "user", "content": request.prompt}]
        if request.prefill:
            messages.append({"role": "assistant", "content": request.prefill})
        # No temperature: the current Messages API (and SDK) no longer takes one; answers are cached instead.
        params: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": request.max_tokens}
        if request.system:
            params["system"] = request.system
        try:
            response = await client.messages.create(**params)
        except anthropic.AnthropicError as error:  # every SDK failure becomes an LLMError, retryable or not
            raise _map_error(anthropic, error) from error
        except ValueError as error:
            raise _map_error(anthropic, error) from error
        try:
            text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
            usage = response.usage
        except (AttributeError, TypeError) as error:
            raise _malformed(error) from error
        # The prefill is part of the answer: Anthropic returns only what follows it.
        return Completion(
            text=request.prefill + text,
            input_tokens=getattr(usage, "input_tokens", None),
            output_tokens=getattr(usage, "output_tokens", None),
        )
