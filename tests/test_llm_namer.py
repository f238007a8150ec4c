"""The LLM namer over real HTTP: prompts from k-supported keywords only, names kept only if k-supported."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from clio_lite.llm import LLMNamer, OpenAIBackend, Request
from clio_lite.llm.namer import SupportIndex, unsupported_words
from clio_lite.llm.runner import estimate_tokens
from clio_lite.name import NodeToName
from tests.llm_server import LLMServer

MIN_USERS = 10


def keywords_in(prompt: str) -> list[str]:
    block = re.search(r"<cluster_keywords>\s*(.*?)\s*</cluster_keywords>", prompt, re.DOTALL).group(1)
    return [keyword.strip() for keyword in block.split(",")]


def about(prompt: str, word: str) -> bool:
    """Whether the cluster being named (not a contrast cluster) has ``word`` among its keywords."""
    return word in ", ".join(keywords_in(prompt))


def clean_answer(prompt: str) -> str:
    """A well-behaved model: names the cluster with its own first keywords."""
    keywords = keywords_in(prompt)
    return f"<name>{keywords[0].title()}, {keywords[1]}</name><description>{', '.join(keywords[:3])}.</description>"


@pytest.fixture
def server():
    with LLMServer(responder=clean_answer) as running:
        yield running


@pytest.fixture
def corpus():
    """Two topics of 40 conversations by 20 users each, under one parent; one user also typed a secret word."""
    pandas = "how do I merge a pandas dataframe in python and fix the index"
    git = "my git branch has a rebase conflict, how do I resolve the merge commit"
    texts = [pandas] * 40 + [git] * 40
    texts[3] = pandas + " for the zorblax project of <PERSON>"
    user_codes = np.repeat(np.arange(40), 2)
    nodes = [
        NodeToName(np.arange(80), parent=-1, depth=0),
        NodeToName(np.arange(40), parent=0, depth=1),
        NodeToName(np.arange(40, 80), parent=0, depth=1),
    ]
    return texts, user_codes, nodes


def namer_for(server: LLMServer, **params) -> LLMNamer:
    backend = OpenAIBackend("namer-model", base_url=server.openai_url, timeout=5.0)
    return LLMNamer(backend, backoff=0.001, **params)


def test_clusters_are_named_bottom_up_from_keywords_and_children_names(server, corpus):
    texts, user_codes, nodes = corpus
    names = namer_for(server).name(texts, user_codes, nodes, MIN_USERS)
    prompts = [body["messages"][-1]["content"] for body in server.requests]
    assert len(prompts) == 3
    # the leaves are asked first, each against the other as contrast; the parent last, from its children's names
    assert "<contrast_keywords>" in prompts[0] and "<contrast_keywords>" in prompts[1]
    assert "<subcluster_names>" in prompts[2]
    assert names[1].name in prompts[2] and names[2].name in prompts[2]
    assert "pandas" in names[1].name.lower() and "git" in names[2].name.lower() or "rebase" in names[2].name.lower()


def test_prompts_hold_k_supported_keywords_only_never_conversation_text(server, corpus):
    texts, user_codes, nodes = corpus
    namer_for(server).name(texts, user_codes, nodes, MIN_USERS)
    sent = json.dumps(server.requests)
    assert "zorblax" not in sent and "PERSON" not in sent
    assert "how do I merge" not in sent  # keywords, not sentences


def test_a_name_with_a_word_fewer_than_min_users_typed_is_rejected(server, corpus):
    texts, user_codes, nodes = corpus
    server.responder = lambda prompt: (
        "<name>Zorblax pandas project</name><description>Pandas.</description>" if about(prompt, "pandas")
        else clean_answer(prompt)
    )
    namer = namer_for(server)
    names = namer.name(texts, user_codes, nodes, MIN_USERS)
    assert "zorblax" not in " ".join(n.name + n.description for n in names).lower()
    assert namer.naming_[1]["source"] == "keywords" and namer.naming_[1]["reason"].startswith("rejected")
    assert "zorblax" not in json.dumps(namer.naming_).lower()  # the record does not quote what was rejected
    assert namer.naming_[2] == {"source": "llm", "reason": None}


def test_an_invented_content_word_is_rejected_even_if_nobody_typed_it(server, corpus):
    texts, user_codes, nodes = corpus
    server.responder = lambda prompt: "<name>Email the admin password</name><description>Leak.</description>"
    namer = namer_for(server)
    names = namer.name(texts, user_codes, nodes, MIN_USERS)
    assert all(entry["source"] == "keywords" for entry in namer.naming_)
    assert not any("password" in n.name.lower() for n in names)


def test_unsupported_words_counts_each_rule():
    texts = ["python pandas merge"] * 20 + ["rust borrow checker"] * 20 + ["python secret"]
    support = SupportIndex(texts, np.arange(41))
    node = np.arange(20)
    assert unsupported_words({"name": "Python pandas", "description": "Questions about merge."}, support, node, 10) == 0
    assert unsupported_words({"name": "Rust", "description": ""}, support, node, 10) == 1  # not in this node
    assert unsupported_words({"name": "Python secret", "description": ""}, support, node, 10) == 2  # word, bigram
    assert unsupported_words({"name": "Nonexistentword", "description": ""}, support, node, 10) == 1


def test_malformed_answers_keep_the_keyword_name_and_say_why(server, corpus):
    texts, user_codes, nodes = corpus
    server.responder = lambda prompt: "Sorry, I can only chat." if about(prompt, "pandas") else clean_answer(prompt)
    namer = namer_for(server)
    names = namer.name(texts, user_codes, nodes, MIN_USERS)
    assert namer.naming_[1] == {"source": "keywords", "reason": "unparsed"}
    assert " · " in names[1].name  # the keyword namer's title


def test_rate_limits_are_retried_during_naming(server, corpus):
    texts, user_codes, nodes = corpus
    server.fail_next("429", times=3, retry_after="0")
    namer = namer_for(server)
    namer.name(texts, user_codes, nodes, MIN_USERS)
    assert all(entry["source"] == "llm" for entry in namer.naming_)
    assert sum(run["retries"] for run in namer.runs_) == 3 and server.request_count == 6


def test_the_budget_stops_naming_and_the_rest_keep_keyword_names(server, corpus):
    texts, user_codes, nodes = corpus
    namer_for(server).name(texts, user_codes, nodes, MIN_USERS)
    leaves = [body["messages"] for body in server.requests[:2]]
    one_leaf = 200 + max(estimate_tokens(Request(user["content"], system=system["content"])) for system, user in leaves)
    budget = one_leaf + 20  # room for one leaf's worst case (its input and 200 answer tokens), not for a second
    namer = namer_for(server, max_tokens=budget, max_concurrency=1)
    names = namer.name(texts, user_codes, nodes, MIN_USERS)
    assert [entry["source"] for entry in namer.naming_] == ["keywords", "llm", "keywords"]
    assert namer.naming_[2]["reason"] == namer.naming_[0]["reason"] == "not_run: the budget was reached"
    assert sum(run["input_tokens"] + run["output_tokens"] for run in namer.runs_) <= budget
    assert all(name.name for name in names)


def test_a_cached_rerun_makes_no_request(server, corpus, tmp_path):
    texts, user_codes, nodes = corpus
    first = namer_for(server, cache=tmp_path / "names.sqlite").name(texts, user_codes, nodes, MIN_USERS)
    count = server.request_count
    second = namer_for(server, cache=tmp_path / "names.sqlite").name(texts, user_codes, nodes, MIN_USERS)
    assert server.request_count == count and first == second


def test_manifest_entry_records_the_source_per_node(server, corpus):
    texts, user_codes, nodes = corpus
    namer = namer_for(server)
    namer.name(texts, user_codes, nodes, MIN_USERS)
    entry = namer.manifest_entry(["0", "0.0", "0.1"])
    assert entry["named_by_llm"] == 3 and entry["model"] == "namer-model"
    assert entry["nodes"]["0.1"] == {"source": "llm", "reason": None}
