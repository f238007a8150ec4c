"""Optional LLM stages: backends, a cached and budgeted runner, LLM facets, an LLM namer and an LLM privacy auditor.

Nothing here runs unless you pass a backend: clio_lite is offline by default. Only scrubbed text is ever sent, and
what an LLM writes reaches a release only after the same k-support checks and audit as the offline path.

    from clio_lite.llm import OpenAIBackend, LLMNamer
    backend = OpenAIBackend("llama3.1:8b", base_url="http://localhost:11434/v1")
    clio = Clio(namer=LLMNamer(backend, cache="llm-cache.sqlite", max_tokens=200_000)).fit(convs)

Needs the ``llm`` extra: ``pip install 'clio_lite[llm]'``. See ``docs/llm.md``.
"""

from .auditor import LLMAuditor
from .backends import AnthropicBackend, Completion, LLMError, OpenAIBackend, Price, Request, RetryableError
from .cache import SQLiteCache, cache_key
from .facets import ConcernFacet, LanguageFacet, LLMClassifier, LLMFacet, RequestFacet, TaskFacet, clio_facets
from .namer import LLMNamer
from .parse import ParseError, parse_fields, parse_json, parse_score, parse_tag
from .runner import Estimate, Item, LLMRunner, RunReport

__all__ = [
    "AnthropicBackend", "Completion", "ConcernFacet", "Estimate", "Item", "LLMAuditor", "LLMClassifier", "LLMError",
    "LLMFacet", "LLMNamer", "LLMRunner", "LanguageFacet", "OpenAIBackend", "ParseError", "Price", "Request",
    "RequestFacet", "RetryableError", "RunReport", "SQLiteCache", "TaskFacet", "cache_key", "clio_facets",
    "parse_fields", "parse_json", "parse_score", "parse_tag",
]
