"""clio_lite: what people use a chatbot for, learned bottom-up from conversation logs, released k-anonymously.

The public API::

    import clio_lite as cl
    convs = cl.load_conversations("chats.jsonl")
    clio = cl.Clio(min_users=25, min_conversations=50, random_state=0).fit(convs)
    clio.release_.tree.show()
    clio.release_.save("release/")

Optional LLM stages (backends, LLM facets, an LLM namer and privacy auditor) are in :mod:`clio_lite.llm`.
"""

from .audit import AuditReport, audit
from .facets import EmbeddingClassifier, Facet
from .io import iter_conversations, load_conversations
from .pipeline import Clio
from .release import ClusterNode, ClusterTree, Release
from .schema import Conversation, Conversations, Message, Rejection
from .scrub import PatternScrubber, PresidioScrubber

__all__ = [
    "AuditReport",
    "Clio",
    "ClusterNode",
    "ClusterTree",
    "Conversation",
    "Conversations",
    "EmbeddingClassifier",
    "Facet",
    "Message",
    "PatternScrubber",
    "PresidioScrubber",
    "Rejection",
    "Release",
    "audit",
    "iter_conversations",
    "load_conversations",
]
__version__ = "0.1.0"
