"""Run many LLM calls: bounded concurrency, retries with backoff, a cache, an estimate first and a hard budget.

:class:`LLMRunner` takes a list of :class:`~clio_lite.llm.backends.Request` and returns a :class:`RunReport` with
one :class:`Item` per request, in order, each ``ok``, ``cached``, ``unparsed`` (the answer lacked the structure
asked for), ``failed`` (retries exhausted, or an error not worth retrying) or ``not_run`` (the budget stopped the
run first). A run never raises for a single bad item: callers decide what a missing answer means (the LLM namer
keeps the keyword name, the LLM auditor reports the node as not rated).

Before the first call the runner logs an estimate: requests, how many are cached, input tokens (about four
characters a token), the most output tokens the requests allow, and dollars when the backend has a price.

The budget (``max_tokens`` and/or ``max_dollars``) is hard: a request is sent only if the tokens already used, plus
the worst case of the requests in flight, plus this request's worst case (its estimated input and its full
``max_tokens`` of output) stay within it. The first request that would not fit stops the run: requests in flight
finish, nothing new is sent, and every request not done is reported ``not_run``. Spending is counted from the token
usage the server reports (the estimate stands in when it reports none); cached answers cost nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from .backends import Backend, Completion, LLMError, Request, RetryableError
from .cache import SQLiteCache, cache_key
from .parse import ParseError

logger = logging.getLogger(__name__)

#: Characters per token assumed by estimates (English text with a BPE tokenizer is close to four).
CHARS_PER_TOKEN = 4
#: Tokens a chat request adds around its text (role markers, template).
OVERHEAD_TOKENS = 8
STATUSES = ("ok", "cached", "unparsed", "failed", "not_run")


def estimate_tokens(request: Request) -> int:
    """Estimated input tokens of ``request``: its characters over :data:`CHARS_PER_TOKEN`, plus an overhead."""
    chars = len(request.system) + len(request.prompt) + len(request.prefill)
    return math.ceil(chars / CHARS_PER_TOKEN) + OVERHEAD_TOKENS


@dataclass(frozen=True)
class Estimate:
    """What a run will cost at most, before it starts."""

    requests: int
    cached: int
    input_tokens: int
    max_output_tokens: int
    max_dollars: float | None

    def __str__(self) -> str:
        dollars = "no price set" if self.max_dollars is None else f"at most ${self.max_dollars:.4f}"
        return (
            f"{self.requests} LLM requests ({self.cached} cached): about {self.input_tokens:,} input tokens, "
            f"at most {self.max_output_tokens:,} output tokens, {dollars}"
        )


@dataclass
class Item:
    """The outcome of one request.

    ``value`` is the parsed answer (or the raw text when no parser was given); ``error`` says why an item is not
    ``ok``/``cached`` (never quoting the answer); ``attempts`` counts HTTP calls; ``waited`` the seconds of backoff.
    """

    index: int
    status: str = "not_run"
    text: str | None = None
    value: Any = None
    error: str | None = None
    attempts: int = 0
    waited: float = 0.0

    @property
    def done(self) -> bool:
        return self.status in ("ok", "cached")


@dataclass
class RunReport:
    """The items of a run, in request order, and what the run spent."""

    items: list[Item]
    estimate: Estimate
    input_tokens: int = 0
    output_tokens: int = 0
    dollars: float = 0.0
    http_requests: int = 0
    retries: int = 0
    stopped_by_budget: bool = False
    budget: dict[str, float | None] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(item.status for item in self.items)
        return {status: found.get(status, 0) for status in STATUSES}

    @property
    def values(self) -> list[Any]:
        """The parsed value of each item, ``None`` where it is not done."""
        return [item.value if item.done else None for item in self.items]

    def to_dict(self) -> dict[str, Any]:
        """What a manifest may record: counts and spending, no answer text."""
        return {
            "requests": len(self.items),
            "counts": self.counts,
            "http_requests": self.http_requests,
            "retries": self.retries,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "dollars": round(self.dollars, 6),
            "stopped_by_budget": self.stopped_by_budget,
            "budget": dict(self.budget),
        }

    def summary(self) -> str:
        counts = ", ".join(f"{count} {status}" for status, count in self.counts.items() if count)
        lines = [
            f"LLM run: {len(self.items)} requests: {counts}; {self.http_requests} HTTP calls ({self.retries} retries); "
            f"{self.input_tokens:,} input + {self.output_tokens:,} output tokens, ${self.dollars:.4f}"
        ]
        if self.stopped_by_budget:
            not_run = [item.index for item in self.items if item.status == "not_run"]
            lines.append(f"stopped by the budget {self.budget}: {len(not_run)} requests not run (items {not_run[:20]}"
                         f"{'...' if len(not_run) > 20 else ''})")
        lines.extend(f"  item {item.index}: {item.status}: {item.error}" for item in self.items
                     if item.status in ("failed", "unparsed"))
        return "\n".join(lines)

    __str__ = summary


class LLMRunner:
    """Send requests to a backend concurrently, cached, retried and within a budget.

    Parameters
    ----------
    backend : Backend
        :class:`~clio_lite.llm.OpenAIBackend`, :class:`~clio_lite.llm.AnthropicBackend` or any object with the
        same methods.
    cache : str, Path, SQLiteCache or None
        A SQLite file (or cache object) of past answers; ``None`` caches nothing.
    max_concurrency : int
        Requests in flight at once, at most.
    max_retries : int
        Further attempts after a retryable failure (rate limit, timeout, 5xx, malformed body).
    backoff : float
        Base of the exponential backoff in seconds: attempt ``n`` waits a uniform random time in
        ``[0, min(max_backoff, backoff * 2**n)]`` ("full jitter"), or the server's ``Retry-After`` when it sent one.
    max_backoff : float
        Longest wait between attempts, in seconds (a ``Retry-After`` is capped at it too).
    max_tokens : int or None
        Hard budget in tokens (input plus output) for the run.
    max_dollars : float or None
        Hard budget in dollars for the run (needs ``backend.price``).
    random_state : int or None
        Seeds the jitter.
    verbose : bool
        A progress bar.

    Examples
    --------
    >>> from clio_lite.llm import OpenAIBackend, Request
    >>> runner = LLMRunner(OpenAIBackend("m", base_url="http://localhost:8000/v1"), max_tokens=10_000)
    >>> print(runner.estimate([Request("Name this cluster: git, merge, rebase", max_tokens=50)]))
    1 LLM requests (0 cached): about 18 input tokens, at most 50 output tokens, no price set
    """

    def __init__(
        self,
        backend: Backend,
        cache: Any = None,
        max_concurrency: int = 4,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_tokens: int | None = None,
        max_dollars: float | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ):
        if max_concurrency < 1:
            raise ValueError(f"LLMRunner(max_concurrency={max_concurrency!r}): expected a positive integer.")
        if max_dollars is not None and backend.price is None:
            raise ValueError("LLMRunner(max_dollars=...) needs a backend with a price (e.g. price=Price(1.0, 5.0)).")
        self.backend = backend
        self.cache = SQLiteCache(cache) if cache is not None and not isinstance(cache, SQLiteCache) else cache
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_tokens = max_tokens
        self.max_dollars = max_dollars
        self.random_state = random_state
        self.verbose = verbose

    def _key(self, request: Request) -> str:
        return cache_key(self.backend.kind, self.backend.model, request)

    def _cost(self, input_tokens: float, output_tokens: float) -> float:
        return self.backend.price.cost(input_tokens, output_tokens) if self.backend.price else 0.0

    def estimate(self, requests: Sequence[Request]) -> Estimate:
        """Requests, cached answers, estimated input tokens and the most output tokens and dollars of a run."""
        todo = [r for r in requests if self.cache is None or self.cache.get(self._key(r)) is None]
        input_tokens = sum(estimate_tokens(r) for r in todo)
        output_tokens = sum(r.max_tokens for r in todo)
        dollars = self._cost(input_tokens, output_tokens) if self.backend.price else None
        return Estimate(len(requests), len(requests) - len(todo), input_tokens, output_tokens, dollars)

    def run(self, requests: Sequence[Request], parse: Callable[[str], Any] | None = None) -> RunReport:
        """Run ``requests`` and return the report; works inside a running event loop (a notebook) too."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(requests, parse))
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self.arun(requests, parse)).result()

    async def arun(self, requests: Sequence[Request], parse: Callable[[str], Any] | None = None) -> RunReport:
        """The coroutine behind :meth:`run`."""
        estimate = self.estimate(requests)
        logger.info("%s", estimate)
        report = RunReport(
            [Item(i) for i in range(len(requests))], estimate,
            budget={"max_tokens": self.max_tokens, "max_dollars": self.max_dollars},
        )
        state = _RunState(report, self, parse, random.Random(self.random_state))
        if not requests:
            return report
        client = state.client = self.backend.connect()
        try:
            with tqdm(total=len(requests), desc="LLM requests", unit="req", disable=not self.verbose) as bar:
                state.bar = bar
                await asyncio.gather(*(state.one(item, request) for item, request in zip(report.items, requests,
                                                                                          strict=True)))
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                await close()
        log = logger.warning if report.stopped_by_budget or report.counts["failed"] else logger.info
        log("%s", report.summary())
        return report


class _RunState:
    """The mutable state of one run: spending, reservations, the stop flag, the concurrency bound."""

    def __init__(self, report: RunReport, runner: LLMRunner, parse, rng: random.Random):
        self.report = report
        self.runner = runner
        self.parse = parse
        self.rng = rng
        self.semaphore = asyncio.Semaphore(runner.max_concurrency)
        self.reserved_tokens = 0.0
        self.reserved_dollars = 0.0
        self.bar: Any = None
        self.client: Any = None  # one SDK client per run, made in the run's event loop

    def _fits(self, tokens: int, dollars: float) -> bool:
        runner, report = self.runner, self.report
        if runner.max_tokens is not None and (
            report.input_tokens + report.output_tokens + self.reserved_tokens + tokens > runner.max_tokens
        ):
            return False
        return runner.max_dollars is None or report.dollars + self.reserved_dollars + dollars <= runner.max_dollars

    async def one(self, item: Item, request: Request) -> None:
        runner = self.runner
        key = runner._key(request)
        cached = runner.cache.get(key) if runner.cache is not None else None
        if cached is not None:
            self._finish(item, cached.text, "cached")
            return
        input_estimate = estimate_tokens(request)
        async with self.semaphore:
            for attempt in range(runner.max_retries + 1):
                # The worst case of this attempt: the estimated input and every output token it may produce.
                tokens = input_estimate + request.max_tokens
                dollars = runner._cost(input_estimate, request.max_tokens)
                if self.report.stopped_by_budget or not self._fits(tokens, dollars):
                    self.report.stopped_by_budget = True
                    item.status, item.error = "not_run", "the budget was reached before this request was sent"
                    self._tick()
                    return
                self.reserved_tokens += tokens
                self.reserved_dollars += dollars
                item.attempts += 1
                self.report.http_requests += 1
                if attempt:
                    self.report.retries += 1
                try:
                    completion = await runner.backend.complete(self.client, request)
                except RetryableError as error:
                    self._release(tokens, dollars)
                    item.error = str(error)
                    if attempt == runner.max_retries:
                        break
                    delay = self._delay(attempt, error.retry_after)
                    item.waited += delay
                    logger.debug("item %d: %s; retrying in %.2f s", item.index, error, delay)
                    await asyncio.sleep(delay)
                    continue
                except LLMError as error:
                    self._release(tokens, dollars)
                    item.status, item.error = "failed", str(error)
                    self._tick()
                    return
                self._release(tokens, dollars)
                self._spend(completion, input_estimate)
                self._finish(item, completion.text, "ok")
                # Only answers that parsed are kept: a malformed one is asked again next run, not pinned.
                if runner.cache is not None and item.status == "ok":
                    runner.cache.put(key, completion)
                return
        item.status = "failed"
        item.error = f"gave up after {item.attempts} attempts: {item.error}"
        self._tick()

    def _release(self, tokens: float, dollars: float) -> None:
        self.reserved_tokens -= tokens
        self.reserved_dollars -= dollars

    def _spend(self, completion: Completion, input_estimate: int) -> None:
        input_tokens = completion.input_tokens if completion.input_tokens is not None else input_estimate
        output_tokens = (
            completion.output_tokens
            if completion.output_tokens is not None
            else math.ceil(len(completion.text) / CHARS_PER_TOKEN)
        )
        self.report.input_tokens += input_tokens
        self.report.output_tokens += output_tokens
        self.report.dollars += self.runner._cost(input_tokens, output_tokens)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        runner = self.runner
        if retry_after is not None:
            return min(runner.max_backoff, retry_after)
        return self.rng.uniform(0, min(runner.max_backoff, runner.backoff * 2**attempt))

    def _finish(self, item: Item, text: str, status: str) -> None:
        item.text = text
        if self.parse is None:
            item.status, item.value, item.error = status, text, None
        else:
            try:
                item.value = self.parse(text)
                item.status, item.error = status, None
            except (ParseError, ValueError, KeyError, TypeError, AttributeError) as error:
                item.status, item.error = "unparsed", f"{type(error).__name__}: {error}"
        self._tick()

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update()


def runner_for(stage: Any, **overrides: Any) -> LLMRunner:
    """An :class:`LLMRunner` with an LLM stage's own settings (its backend, cache, concurrency, retries, backoff,
    budget, seed and verbosity), some replaced by ``overrides``."""
    settings = {
        name: getattr(stage, name)
        for name in ("cache", "max_concurrency", "max_retries", "backoff", "max_tokens", "max_dollars",
                     "random_state", "verbose")
    }
    return LLMRunner(stage.backend, **{**settings, **overrides})
