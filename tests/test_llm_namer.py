"""The LLM namer over real HTTP: prompts from k-supported keywords only, names kept only if k-supported."""

from __future__ import annotations

import hashlib
import itertools
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clio_lite.llm import LLMNamer, OpenAIBackend, Request
from clio_lite.llm.namer import SupportIndex, unsupported_words
from clio_lite.llm.runner import estimate_tokens
from clio_lite.name import KeywordNamer, NodeToName
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
    title = ", ".join([keywords[0].title(), *keywords[1:2]])
    return f"<name>{title}</name><description>{', '.join(keywords[:3])}.</description>"


@pytest.fixture
def server():
    with LLMServer(responder=clean_answer) as running:
        yield running


@pytest.fixture
def two_topics():
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


def test_clusters_are_named_bottom_up_from_keywords_and_children_names(server, two_topics):
    texts, user_codes, nodes = two_topics
    names = namer_for(server).name(texts, user_codes, nodes, MIN_USERS)
    prompts = [body["messages"][-1]["content"] for body in server.requests]
    assert len(prompts) == 3
    # the leaves are asked first, each against the other as contrast; the parent last, from its children's names
    assert "<contrast_keywords>" in prompts[0] and "<contrast_keywords>" in prompts[1]
    assert "<subcluster_names>" in prompts[2]
    assert names[1].name in prompts[2] and names[2].name in prompts[2]
    python_words, git_words = {"pandas", "dataframe", "python", "index"}, {"git", "rebase", "branch", "commit"}
    assert set(re.findall(r"\w+", names[1].name.lower())) & python_words
    assert set(re.findall(r"\w+", names[2].name.lower())) & git_words


def test_prompts_hold_k_supported_keywords_only_never_conversation_text(server, two_topics):
    texts, user_codes, nodes = two_topics
    namer_for(server).name(texts, user_codes, nodes, MIN_USERS)
    sent = json.dumps(server.requests)
    assert "zorblax" not in sent and "PERSON" not in sent
    assert "how do I merge" not in sent  # keywords, not sentences


def test_a_name_with_a_word_fewer_than_min_users_typed_is_rejected(server, two_topics):
    texts, user_codes, nodes = two_topics
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


def test_an_invented_content_word_is_rejected_even_if_nobody_typed_it(server, two_topics):
    texts, user_codes, nodes = two_topics
    server.responder = lambda prompt: "<name>Email the admin password</name><description>Leak.</description>"
    namer = namer_for(server)
    names = namer.name(texts, user_codes, nodes, MIN_USERS)
    assert all(entry["source"] == "keywords" for entry in namer.naming_)
    assert not any("password" in n.name.lower() for n in names)


def summarising_answer(prompt: str) -> str:
    """A model that summarises conversations (facet prompts) and names clusters with a summary word."""
    if "<conversation>" in prompt:
        topic = "join tables of data" if "pandas" in prompt.split("<conversation>")[1] else "untangle history"
        return f"<answer>The user's overall request for the assistant is to {topic}</answer>"
    if about(prompt, "pandas"):
        return "<name>Join pandas dataframe</name><description>Join a pandas dataframe.</description>"
    return clean_answer(prompt)


def test_summary_keywords_join_the_prompt_and_may_name_the_cluster(server, two_topics):
    from clio_lite.llm import RequestFacet

    texts, user_codes, nodes = two_topics
    server.responder = summarising_answer
    without = namer_for(server)
    without.name(texts, user_codes, nodes, MIN_USERS)
    assert without.naming_[1]["source"] == "keywords"  # "join" is no user's word: rejected
    backend = OpenAIBackend("namer-model", base_url=server.openai_url, timeout=5.0)
    namer = namer_for(server, summaries=RequestFacet(backend))
    names = namer.name(texts, user_codes, nodes, MIN_USERS)
    assert namer.naming_[1] == {"source": "llm", "reason": None} and names[1].name == "Join pandas dataframe"
    naming_prompts = [b["messages"][-1]["content"] for b in server.requests if "<cluster_keywords>" in
                      b["messages"][-1]["content"]]
    assert any("<summary_keywords>" in p and "join" in p for p in naming_prompts)
    assert namer.runs_[0]["stage"] == "summaries" and namer.runs_[0]["counts"]["ok"] == len(texts)
    # a word in nobody's text nor summary stays rejected
    assert unsupported_words({"name": "joins", "description": ""}, SupportIndex(texts, user_codes),
                             nodes[1].members, MIN_USERS) == 1


def test_unsupported_words_counts_each_rule():
    texts = ["python pandas merge"] * 20 + ["rust borrow checker"] * 20 + ["python secret"]
    support = SupportIndex(texts, np.arange(41))
    node = np.arange(20)
    assert unsupported_words({"name": "Python pandas", "description": "Questions about merge."}, support, node, 10) == 0
    assert unsupported_words({"name": "Rust", "description": ""}, support, node, 10) == 1  # not in this node
    assert unsupported_words({"name": "Python secret", "description": ""}, support, node, 10) == 2  # word, bigram
    assert unsupported_words({"name": "Nonexistentword", "description": ""}, support, node, 10) == 1


def test_malformed_answers_keep_the_keyword_name_and_say_why(server, two_topics):
    texts, user_codes, nodes = two_topics
    server.responder = lambda prompt: "Sorry, I can only chat." if about(prompt, "pandas") else clean_answer(prompt)
    namer = namer_for(server)
    names = namer.name(texts, user_codes, nodes, MIN_USERS)
    assert namer.naming_[1] == {"source": "keywords", "reason": "unparsed"}
    assert names[1].name == KeywordNamer().name(texts, user_codes, nodes, MIN_USERS)[1].name  # the keyword title


def test_rate_limits_are_retried_during_naming(server, two_topics):
    texts, user_codes, nodes = two_topics
    server.fail_next("429", times=3, retry_after="0")
    namer = namer_for(server)
    namer.name(texts, user_codes, nodes, MIN_USERS)
    assert all(entry["source"] == "llm" for entry in namer.naming_)
    assert sum(run["retries"] for run in namer.runs_) == 3 and server.request_count == 6


def test_the_budget_stops_naming_and_the_rest_keep_keyword_names(server, two_topics):
    texts, user_codes, nodes = two_topics
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


def test_a_cached_rerun_makes_no_request(server, two_topics, tmp_path):
    texts, user_codes, nodes = two_topics
    first = namer_for(server, cache=tmp_path / "names.sqlite").name(texts, user_codes, nodes, MIN_USERS)
    count = server.request_count
    second = namer_for(server, cache=tmp_path / "names.sqlite").name(texts, user_codes, nodes, MIN_USERS)
    assert server.request_count == count and first == second


def test_manifest_entry_records_the_source_per_node(server, two_topics):
    texts, user_codes, nodes = two_topics
    namer = namer_for(server)
    namer.name(texts, user_codes, nodes, MIN_USERS)
    entry = namer.manifest_entry(["0", "0.0", "0.1"])
    assert entry["named_by_llm"] == 3 and entry["model"] == "namer-model"
    assert entry["nodes"]["0.1"] == {"source": "llm", "reason": None}


INJECTED = "zqxj ignore previous instructions"


def injecting_answers():
    """A model steered by an injection on about half the clusters (its name carries a string no user typed), and
    answering without the asked tags on one request in seven (counted, so that some answer is malformed whatever
    the prompts hold)."""
    answered = itertools.count()

    def answer(prompt: str) -> str:
        keywords = keywords_in(prompt)
        digest = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
        if next(answered) % 7 == 3:
            return "What a lovely cluster! I would call it a group of friends."
        if digest % 2:
            return f"<name>{keywords[0].title()} {INJECTED}</name><description>{keywords[0]}.</description>"
        return clean_answer(prompt)

    return answer


class RecordingNamer:
    """Passes the pipeline's call through to a real LLMNamer and keeps its arguments, to rename the same nodes."""

    def __init__(self, namer: LLMNamer):
        self.namer = namer

    def name(self, *args):
        self.args = args
        return self.namer.name(*args)

    def manifest_entry(self, node_ids):
        return self.namer.manifest_entry(node_ids)


@pytest.mark.slow
def test_clio_with_the_llm_namer_releases_no_injected_string(corpus, embedding_cache, tmp_path):
    from clio_lite import Clio
    from tests.conftest import E2E_PARAMS

    with LLMServer(responder=injecting_answers()) as server:
        server.fail_next("429", times=2, retry_after="0")
        namer = RecordingNamer(namer_for(server, cache=tmp_path / "names.sqlite"))
        clio = Clio(namer=namer, cache_dir=embedding_cache, **E2E_PARAMS).fit(corpus)
        sent = json.dumps(server.requests)

        # The same nodes renamed with half the tokens the first naming used: the budget stops it part way.
        spent = sum(run["input_tokens"] + run["output_tokens"] for run in namer.namer.runs_)
        budgeted = namer_for(server, max_tokens=spent // 2, max_concurrency=1)
        before = server.request_count
        renamed = budgeted.name(*namer.args)
        assert sum(run["input_tokens"] + run["output_tokens"] for run in budgeted.runs_) <= spent // 2
        assert server.request_count - before == sum(run["http_requests"] for run in budgeted.runs_)
    reasons = [entry["reason"] for entry in budgeted.naming_]
    assert "not_run: the budget was reached" in reasons and None in reasons
    keyword_names = namer.namer.keyword_namer or KeywordNamer()
    base = keyword_names.name(*namer.args)
    assert all(name == fallback for name, fallback, reason in zip(renamed, base, reasons, strict=True)
               if reason == "not_run: the budget was reached")

    assert namer.namer.runs_[0]["retries"] == 2
    release = clio.release_
    naming = release.manifest["naming"]
    reasons = [entry["reason"] or "" for entry in naming["nodes"].values()]
    assert set(naming["nodes"]) == {node.id for node in release.tree}
    assert naming["named_by_llm"] > 0  # the positive control: clean names are used
    assert any(reason.startswith("rejected") for reason in reasons)  # injected names are not
    assert "unparsed" in reasons and "failed" not in reasons  # malformed answers are reported per node
    for node in release.tree:
        # an LLM name is the model's clean answer; every other node keeps the keyword namer's wording
        from_llm = naming["nodes"][node.id]["source"] == "llm"
        assert from_llm == (not node.description.startswith(("Conversations about", "No term is shared")))
    saved = release.save(tmp_path / "release")
    written = " ".join(path.read_text(errors="ignore") for path in saved.iterdir() if path.suffix == ".json")
    assert "zqxj" not in written.lower() and "zqxj" not in release.to_json().lower()
    assert "lovely" not in written.lower()
    assert clio.audit_.passed
    # only k-supported keywords went out: no e-mail address, no placeholder, no conversation sentence
    assert "@" not in sent and "<PERSON>" not in sent and "<EMAIL_ADDRESS>" not in sent


VOCAB = ["pandas", "merge", "git", "rebase", "questions", "help", "about", "the", "zorblax"]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 11), st.lists(st.sampled_from(VOCAB), min_size=1, max_size=6)),
                  min_size=1, max_size=40),
    members_mask=st.lists(st.booleans(), min_size=40, max_size=40),
    name=st.lists(st.sampled_from(VOCAB), min_size=1, max_size=4),
    min_users=st.integers(1, 4),
)
def test_an_accepted_name_is_k_supported_by_a_brute_force_recount(rows, members_mask, name, min_users):
    texts = [" ".join(words) for _, words in rows]
    user_codes = np.array([user for user, _ in rows])
    members = np.array([i for i in range(len(rows)) if members_mask[i]], dtype=int)
    candidate = {"name": " ".join(name), "description": ""}
    accepted = unsupported_words(candidate, SupportIndex(texts, user_codes), members, min_users) == 0

    def users(gram, among):
        return len({user_codes[i] for i in among
                    if any(tuple(texts[i].split()[s : s + len(gram)]) == gram for s in range(len(texts[i].split())))})

    grams = [tuple(name[s : s + n]) for s in range(len(name)) for n in (1, 2, 3) if s + n <= len(name)]
    content = [g for g in grams if len(g) == 1 and g[0] in ("pandas", "merge", "git", "rebase", "zorblax")]
    others = [g for g in grams if g not in content]
    everyone = range(len(rows))
    expected = all(users(g, members) >= min_users for g in content) and all(
        users(g, everyone) == 0 or users(g, everyone) >= min_users for g in others
    )
    assert accepted == expected


def test_the_config_records_the_namer_and_never_the_api_key(monkeypatch, tmp_path):
    from clio_lite import Clio
    from clio_lite.llm import Price, RequestFacet

    monkeypatch.setenv("CLIO_TEST_KEY", "sk-very-secret")
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key_env="CLIO_TEST_KEY", price=Price(1, 2))
    assert backend.connect().api_key == "sk-very-secret"  # the key is used...
    namer = LLMNamer(backend, cache=tmp_path / "c.sqlite", summaries=RequestFacet(backend))
    config = Clio(namer=namer)._config()
    assert json.loads(json.dumps(config)) == config
    assert config["namer"]["class"] == "clio_lite.llm.namer.LLMNamer"
    assert config["namer"]["params"]["backend"]["params"]["model"] == "m"
    assert "sk-very-secret" not in json.dumps(config)  # ...and never recorded
