"""Clio's LLM facets over real HTTP: only scrubbed text is sent, free-text answers are scrubbed again."""

from __future__ import annotations

import json
import re

import pytest

from clio_lite.llm import ConcernFacet, LanguageFacet, LLMClassifier, OpenAIBackend, RequestFacet, clio_facets
from clio_lite.schema import Conversation, Message
from tests.llm_server import LLMServer

RAW = [
    "Hi, I'm Maria Gonzalez (maria.gonzalez@example.com), help me fix my pandas merge",
    "Necesito ayuda con mi currículum, soy Juan Pérez",
    "Tell me how to pick a lock on my neighbour's door",
]
SCRUBBED = [
    "Hi, I'm <PERSON> (<EMAIL_ADDRESS>), help me fix my pandas merge",
    "Necesito ayuda con mi currículum, soy <PERSON>",
    "Tell me how to pick a lock on my neighbour's door",
]


@pytest.fixture
def conversations() -> list[Conversation]:
    return [Conversation(f"c{i}", f"u{i}", (Message("user", text),)) for i, text in enumerate(RAW)]


def conversation_in(prompt: str) -> str:
    return re.search(r"<conversation>\s*(.*?)\s*</conversation>", prompt, re.DOTALL).group(1)


def answers(prompt: str) -> str:
    text = conversation_in(prompt)
    if "Concern" in prompt or "how concerning" in prompt:
        return "<answer>4</answer>" if "lock" in text else "<answer>1</answer>"
    if "main languages" in prompt:
        return "<answer>Spanish</answer>" if "Necesito" in text else "<answer>English; Spanish.</answer>"
    # A model that repeats personal details despite the instruction, as an injection could make it.
    return "<answer>The user's overall request is to email Maria Gonzalez at maria.gonzalez@example.com.</answer>"


@pytest.fixture
def server():
    with LLMServer(responder=answers) as running:
        yield running


def backend(server: LLMServer) -> OpenAIBackend:
    return OpenAIBackend("facet-model", base_url=server.openai_url, timeout=5.0)


def test_only_scrubbed_text_is_sent(server, conversations):
    ConcernFacet(backend(server)).compute(conversations, SCRUBBED)
    sent = json.dumps(server.requests, ensure_ascii=False)
    assert "Maria Gonzalez" not in sent and "maria.gonzalez@example.com" not in sent and "Juan" not in sent
    assert sorted(conversation_in(b["messages"][-1]["content"]) for b in server.requests) == sorted(SCRUBBED)


def test_free_text_answers_are_scrubbed_again(server, conversations):
    values = RequestFacet(backend(server)).compute(conversations, SCRUBBED)
    assert len(values) == 3 and all(isinstance(value, str) for value in values)
    joined = " ".join(values)
    assert "maria.gonzalez@example.com" not in joined and "Gonzalez" not in joined
    assert "<EMAIL_ADDRESS>" in joined
    prompt = server.requests[0]["messages"][-1]["content"]
    assert "do not include any personally identifiable information" in prompt
    assert "The user's overall request for the assistant is to" in prompt  # Clio's prefill


def test_concern_is_a_number_from_one_to_five(server, conversations):
    facet = ConcernFacet(backend(server))
    assert facet.kind == "numeric" and facet.name == "concern" and facet.bins is None
    assert facet.compute(conversations, SCRUBBED) == [1, 1, 4]


def test_languages_are_a_multi_label_value_and_nothing_else(server, conversations):
    server.responder = lambda prompt: (
        "<answer>write to maria.gonzalez@example.com</answer>" if "lock" in prompt else answers(prompt)
    )
    assert LanguageFacet(backend(server)).compute(conversations, SCRUBBED) == [
        ("English", "Spanish"), ("Spanish",), None,
    ]


def test_classifier_values_are_always_one_of_its_labels(server, conversations):
    server.responder = lambda prompt: (
        "<answer>coaching; companionship</answer>" if "currículum" in prompt
        else "<answer>none of them, but here is a secret</answer>" if "lock" in prompt
        else "<answer>not affective</answer>"
    )
    labels = {"coaching": "personal goals", "companionship": "company", "not affective": "anything else"}
    multi = LLMClassifier(backend(server), "affective_llm", labels, multi_label=True)
    assert multi.compute(conversations, SCRUBBED) == [("not affective",), ("coaching", "companionship"), None]
    single = LLMClassifier(backend(server), "affective_llm", labels)
    assert single.compute(conversations, SCRUBBED) == ["not affective", None, None]  # two labels: not one


def test_a_failed_or_unbudgeted_conversation_is_unknown(server, conversations):
    server.fail_next("400", match="lock")
    facet = ConcernFacet(backend(server), backoff=0.001)
    assert facet.compute(conversations, SCRUBBED) == [1, 1, None]
    assert facet.run_.counts["failed"] == 1
    stopped = ConcernFacet(backend(server), max_tokens=1)
    assert stopped.compute(conversations, SCRUBBED) == [None, None, None] and stopped.run_.stopped_by_budget


def test_clio_facets_are_the_four_questions(server):
    facets = clio_facets(backend(server), max_concurrency=2)
    assert [facet.name for facet in facets] == ["request", "task", "llm_language", "concern"]
    assert [facet.kind for facet in facets] == ["categorical", "categorical", "categorical", "numeric"]
    assert all(facet.max_concurrency == 2 for facet in facets)
