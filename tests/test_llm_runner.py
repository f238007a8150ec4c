"""The LLM runner over real HTTP: the real openai and anthropic SDKs against a scripted server on 127.0.0.1."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clio_lite.llm import (
    AnthropicBackend,
    LLMRunner,
    OpenAIBackend,
    Price,
    Request,
    SQLiteCache,
    cache_key,
    parse_json,
    parse_tag,
)
from tests.llm_server import LLMServer


@pytest.fixture
def server():
    with LLMServer() as running:
        yield running


def openai_backend(server: LLMServer, **params) -> OpenAIBackend:
    return OpenAIBackend("test-model", base_url=server.openai_url, timeout=params.pop("timeout", 5.0), **params)


def answer_tag(text: str) -> str:
    return parse_tag(text, "answer")


def prompts(n: int) -> list[Request]:
    return [Request(f"Question number {i}: what is {i} squared?", max_tokens=20) for i in range(n)]


def test_answers_arrive_in_request_order_and_are_parsed(server):
    server.responder = lambda prompt: f"<answer>{prompt.split(':')[0]}</answer> trailing chatter"
    report = LLMRunner(openai_backend(server), max_concurrency=3).run(prompts(6), parse=answer_tag)
    assert [item.value for item in report.items] == [f"Question number {i}" for i in range(6)]
    assert report.counts["ok"] == 6 and server.request_count == 6 and report.http_requests == 6
    assert report.input_tokens > 0 and report.output_tokens > 0  # the server's reported usage is counted
    # the system prompt and the model reach the server through the SDK
    assert all(body["model"] == "test-model" for body in server.requests)


def test_rate_limit_then_success_honours_retry_after(server):
    server.fail_next("429", times=2, retry_after="0.2")
    report = LLMRunner(openai_backend(server), max_concurrency=1, backoff=0.01).run(prompts(1), parse=answer_tag)
    item = report.items[0]
    assert item.status == "ok" and item.attempts == 3
    assert item.waited == pytest.approx(0.4)  # two waits of the server's Retry-After, not the runner's backoff
    assert server.request_count == 3 and report.retries == 2


def test_server_errors_are_retried_with_backoff(server):
    server.fail_next("500", times=2)
    report = LLMRunner(openai_backend(server), backoff=0.01, random_state=0).run(prompts(1), parse=answer_tag)
    assert report.items[0].status == "ok" and report.items[0].attempts == 3
    assert 0 < report.items[0].waited <= 0.01 + 0.02  # full jitter within backoff * 2**attempt


def test_retries_give_up_and_report_the_item_not_the_run(server):
    server.fail_next("500", times=10, match="number 1:")
    report = LLMRunner(openai_backend(server), max_retries=2, backoff=0.001).run(prompts(3), parse=answer_tag)
    assert [item.status for item in report.items] == ["ok", "failed", "ok"]
    assert report.items[1].attempts == 3 and "HTTP 500" in report.items[1].error
    assert "item 1: failed" in report.summary()


def test_a_slow_answer_times_out_and_is_retried(server):
    server.fail_next("slow", seconds=2.0)
    report = LLMRunner(openai_backend(server, timeout=0.3), backoff=0.001).run(prompts(1), parse=answer_tag)
    assert report.items[0].status == "ok" and report.items[0].attempts == 2
    assert "timed out" in (report.items[0].error or "timed out")  # cleared on success
    assert server.request_count == 2


def test_a_body_that_is_not_json_is_retried(server):
    server.fail_next("malformed")
    report = LLMRunner(openai_backend(server), backoff=0.001).run(prompts(1), parse=answer_tag)
    assert report.items[0].status == "ok" and report.items[0].attempts == 2


def test_an_answer_without_the_asked_structure_is_reported_per_item(server):
    server.responder = lambda prompt: "I cannot answer that." if "number 2:" in prompt else '```json\n{"v": 1}\n```'
    report = LLMRunner(openai_backend(server)).run(prompts(4), parse=parse_json)
    assert [item.status for item in report.items] == ["ok", "ok", "unparsed", "ok"]
    assert report.values == [{"v": 1}, {"v": 1}, None, {"v": 1}]
    assert "no JSON" in report.items[2].error and "I cannot" not in report.items[2].error


def test_client_errors_are_not_retried(server):
    server.fail_next("400", times=5)
    report = LLMRunner(openai_backend(server), backoff=0.001).run(prompts(1))
    assert report.items[0].status == "failed" and report.items[0].attempts == 1
    assert "HTTP 400" in report.items[0].error and server.request_count == 1


def test_concurrency_stays_within_the_bound(server):
    server.delay = 0.05
    report = LLMRunner(openai_backend(server), max_concurrency=3).run(prompts(12))
    assert report.counts["ok"] == 12
    assert server.max_in_flight == 3  # the bound is reached and never exceeded


def test_budget_stops_the_run_cleanly_with_partial_results(server):
    runner = LLMRunner(openai_backend(server), max_concurrency=1, max_tokens=100)
    requests = prompts(10)
    estimate = runner.estimate(requests)
    assert estimate.requests == 10 and estimate.max_output_tokens == 200  # 10 requests x max_tokens 20
    report = runner.run(requests, parse=answer_tag)
    counts = report.counts
    assert counts["ok"] >= 1 and counts["not_run"] >= 1 and counts["ok"] + counts["not_run"] == 10
    assert report.stopped_by_budget and report.input_tokens + report.output_tokens <= 100
    assert server.request_count == counts["ok"]  # nothing was sent after the stop
    assert all(item.value is None for item in report.items if item.status == "not_run")
    assert "stopped by the budget" in report.summary()


def test_dollar_budget_needs_a_price_and_counts_dollars(server):
    with pytest.raises(ValueError, match="price"):
        LLMRunner(openai_backend(server), max_dollars=1.0)
    backend = openai_backend(server, price=Price(input_per_mtok=1_000_000.0, output_per_mtok=1_000_000.0))
    report = LLMRunner(backend, max_concurrency=2, max_dollars=100.0).run(prompts(10))
    assert report.stopped_by_budget and 0 < report.dollars <= 100.0 and report.counts["not_run"] > 0


def test_cache_makes_a_rerun_free(server, tmp_path):
    path = tmp_path / "llm.sqlite"
    first = LLMRunner(openai_backend(server), cache=path).run(prompts(5), parse=answer_tag)
    assert first.counts["ok"] == 5 and server.request_count == 5
    runner = LLMRunner(openai_backend(server), cache=SQLiteCache(path))
    assert runner.estimate(prompts(5)).cached == 5
    second = runner.run(prompts(5), parse=answer_tag)
    assert server.request_count == 5  # zero HTTP requests the second time
    assert second.counts["cached"] == 5 and second.values == first.values and second.input_tokens == 0


def test_cache_key_changes_with_everything_that_changes_the_answer():
    base = cache_key("openai", "m", Request("p", system="s", max_tokens=10, temperature=0.0))
    variants = [
        cache_key("anthropic", "m", Request("p", system="s", max_tokens=10)),
        cache_key("openai", "m2", Request("p", system="s", max_tokens=10)),
        cache_key("openai", "m", Request("p2", system="s", max_tokens=10)),
        cache_key("openai", "m", Request("p", system="s2", max_tokens=10)),
        cache_key("openai", "m", Request("p", system="s", max_tokens=11)),
        cache_key("openai", "m", Request("p", system="s", max_tokens=10, temperature=0.5)),
        cache_key("openai", "m", Request("p", system="s", prefill="<answer>", max_tokens=10)),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_unparsed_answers_are_not_cached(server, tmp_path):
    server.responder = lambda prompt: "no tags here"
    runner = LLMRunner(openai_backend(server), cache=tmp_path / "c.sqlite")
    assert runner.run(prompts(2), parse=answer_tag).counts["unparsed"] == 2
    server.responder = lambda prompt: "<answer>fine</answer>"
    assert runner.run(prompts(2), parse=answer_tag).counts["ok"] == 2 and server.request_count == 4


def test_anthropic_backend_over_the_messages_api(server):
    server.responder = lambda prompt: " 4</answer>"
    backend = AnthropicBackend("claude-test", base_url=server.anthropic_url, timeout=5.0)
    request = Request("Rate this.", system="You rate things.", prefill="<answer>", max_tokens=5)
    report = LLMRunner(backend).run([request], parse=answer_tag)
    assert report.items[0].value == "4"  # the prefill and the continuation read together
    body = server.requests[0]
    assert server.paths == ["/v1/messages"] and body["system"] == "You rate things."
    assert body["messages"][-1] == {"role": "assistant", "content": "<answer>"} and body["max_tokens"] == 5


def test_anthropic_rate_limit_is_mapped_to_a_retry(server):
    server.fail_next("429", retry_after="0")
    server.fail_next("529")  # Anthropic's "overloaded"
    server.fail_next("500")
    backend = AnthropicBackend("claude-test", base_url=server.anthropic_url, timeout=5.0)
    report = LLMRunner(backend, backoff=0.001).run([Request("hi", max_tokens=5)])
    assert report.items[0].status == "ok" and report.items[0].attempts == 4
    server.fail_next("400")
    assert LLMRunner(backend).run([Request("bad", max_tokens=5)]).items[0].status == "failed"


def test_run_works_inside_a_running_event_loop(server):
    import asyncio

    async def in_a_notebook():
        return LLMRunner(openai_backend(server)).run(prompts(2), parse=answer_tag)

    assert asyncio.run(in_a_notebook()).counts["ok"] == 2


def test_the_estimate_is_logged_before_any_request(server):
    seen_at_log_time = []

    class Spy(logging.Handler):
        def emit(self, record):
            seen_at_log_time.append((record.getMessage(), server.request_count))

    spy = Spy(level=logging.INFO)
    logger = logging.getLogger("clio_lite.llm.runner")
    logger.addHandler(spy)
    logger.setLevel(logging.INFO)
    try:
        LLMRunner(openai_backend(server, price=Price(3.0, 15.0))).run(prompts(3))
    finally:
        logger.removeHandler(spy)
        logger.setLevel(logging.NOTSET)
    message, requests_so_far = seen_at_log_time[0]
    assert requests_so_far == 0
    assert "3 LLM requests (0 cached)" in message and "input tokens" in message and "at most $" in message


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(0, 400), concurrency=st.integers(1, 5), n=st.integers(1, 8))
def test_a_run_never_spends_beyond_its_budget_and_accounts_for_every_request(server, budget, concurrency, n):
    before = server.request_count
    report = LLMRunner(openai_backend(server), max_concurrency=concurrency, max_tokens=budget).run(prompts(n))
    counts = report.counts
    assert report.input_tokens + report.output_tokens <= budget
    assert counts["ok"] + counts["not_run"] == n and len(report.items) == n
    assert report.stopped_by_budget == (counts["not_run"] > 0)
    assert server.request_count - before == report.http_requests == counts["ok"]
