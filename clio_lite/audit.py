"""The release auditor: check a release before it leaves the private zone, and say exactly what is wrong with it.

:func:`audit` re-checks what the gate and the namer promise, independently of how they were computed:

``thresholds`` (error)
    Every node has at least ``min_users`` distinct users and ``min_conversations`` conversations.
``differencing`` (error)
    A parent's conversations minus its released children's (its *remainder*) is 0 or at least
    ``min_conversations``; at the top level the manifest's ``released`` count equals the sum over the top-level
    nodes, so no group is revealed by subtraction.
``accounting`` (error)
    ``read == released + suppressed + unclustered + rejected (+ filtered_out)`` (and ``accepted == read - rejected``,
    ``in_released_leaves`` equal to the sum over the leaves, when the manifest holds them).
``pii`` (error or warning)
    Every release string (name, description, each keyword) is re-scanned with the scrubber. Structured entities
    (e-mail, phone, card, IP, street address, IBAN, SSN, bank, licence and passport numbers, crypto wallets, URLs) and
    ``PERSON`` hits that look like a full name (two or more capitalised words: "Maria Gonzalez") are errors; any
    other ``PERSON`` hit is a warning (:func:`pii_severity`), because spaCy's small model tags topic words as people
    and whether a word is one person's is what ``rare_ngrams`` decides from the conversations. Measured with the
    default scrubber, all hits ``PERSON``, no other entity: the release of the test fixture corpus (1,000
    conversations, thresholds 10/20, 36 nodes) gets 8, all single words ("Versus", "Offer", "Job", "Email",
    "Pandas", "grammar", "git" twice); the ``make demo`` release (4,000 conversations, 25/50, 53 nodes) 19, all
    single words ("Git", "Salary", "apps"...); the sample at 5/10 (242 nodes) 127, of which 24 are
    lower-case keyword pairs ("ci runner", "airline miles", "boot systemd") and none a capitalised pair.
``rare_ngrams`` (error; needs the conversations)
    Every word 1-, 2- and 3-gram of every release string that occurs in the user turns of at least one but fewer
    than ``min_users`` distinct users. An n-gram nobody typed came from a template, not from a person, and passes.
    N-grams never cross punctuation that touches whitespace (the title separator ``" · "``, the commas between
    keywords), and of a description or title the keyword namer wrote from its templates only the phrase slots are
    read (see :func:`data_segments`): "Conversations about money and credit ..." would otherwise put the template's
    "conversations", "about money" and "money and" in front of the few users who happened to type them.
``facets`` (error)
    Every facet cell of every node (``node.facets``) counts at least ``min_users`` conversations (a cell of fewer
    conversations cannot have enough users), and no parent's cell minus the same cell of its released children is
    between 1 and ``min_users - 1`` (a group that small would be computable by subtraction). Given the
    conversations, the per-conversation ``labels`` (:attr:`Clio.labels_`) and the facet values
    (``facet_values={"language": [...]}``, in the order of the conversations), each shown value's cell is re-derived:
    it must not count more conversations than the node holds with that value, and those must come from at least
    ``min_users`` distinct users.
``identifiers`` (error; needs the conversations)
    No conversation id or user id (of four characters or more, not only digits, compared case-insensitively)
    appears in a release string or in the manifest.

A finding quotes the release string it is about, never conversation text, so a report can be shared with whoever
may see the release. This module reads the private input (it imports the loaders and the scrubber) and is not part
of the release zone: ``release.py`` never imports it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .release import Release

logger = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"
CHECKS = ("thresholds", "differencing", "accounting", "facets", "pii", "rare_ngrams", "identifiers")
#: Checks of exact counts that do not apply to a differentially private release, whose counts are noised.
EXACT_COUNT_CHECKS = ("differencing",)
#: Checks that read the private conversations; skipped when none are given.
NEEDS_CONVERSATIONS = ("rare_ngrams", "identifiers")
#: Identifiers shorter than this are not searched for: "u1" or "42" occur in ordinary text by chance.
MIN_IDENTIFIER_LENGTH = 4
#: Longest word n-gram checked by ``rare_ngrams``.
MAX_NGRAM = 3

_PLACEHOLDER_SPLIT = re.compile(r"<([A-Z][A-Z_]*)>")
_WORD = re.compile(r"\w+")
# A segment boundary: a run of punctuation that touches whitespace or an end of the string (", ", " · ", "; ",
# a final "."). Punctuation inside a token ("node.js", "e-mail") is not a boundary: there it only splits words.
_BOUNDARY = re.compile(r"(?:^|(?<=\s))[^\w\s]+|[^\w\s]+(?=\s|$)")


@dataclass(frozen=True)
class Finding:
    """One problem found in a release.

    Attributes
    ----------
    check : str
        The check that found it (one of :data:`CHECKS`).
    node_id : str or None
        The released node it is about; ``None`` for the manifest or the release as a whole.
    field : str or None
        Where in the node or manifest: ``"users"``, ``"description"``, ``"keywords[2]"``, ``"counts"``...
    detail : str
        What is wrong. May quote the release string, never conversation text.
    severity : str
        ``"error"`` (fails the audit) or ``"warning"`` (reported, does not fail it).
    """

    check: str
    node_id: str | None
    field: str | None
    detail: str
    severity: str = ERROR

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = " ".join(part for part in (f"node {self.node_id}" if self.node_id else "release", self.field) if part)
        return f"[{self.severity}] {self.check}: {where}: {self.detail}"


@dataclass
class AuditReport:
    """The result of :func:`audit`.

    Attributes
    ----------
    findings : list of Finding
        Every problem found, errors and warnings, in check order.
    checks_run : list of str
        The checks that ran.
    checks_skipped : list of str
        The checks that did not run (those needing the conversations when none were given, and the exact-count
        checks of a differentially private release).
    thresholds : dict
        The ``min_users`` and ``min_conversations`` audited against.

    Examples
    --------
    >>> report = AuditReport(findings=[], checks_run=["thresholds"], checks_skipped=["rare_ngrams"])
    >>> report.passed
    True
    """

    findings: list[Finding] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)
    checks_skipped: list[str] = field(default_factory=list)
    thresholds: dict[str, int] = field(default_factory=dict)
    #: :meth:`ClusterTree.digest` of the audited tree: ``Release.save`` refuses a tree that changed since.
    tree_sha256: str = ""

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == WARNING]

    @property
    def passed(self) -> bool:
        """True when no finding is an error."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-safe values (what a manifest can record)."""
        return {
            "passed": self.passed,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "checks_run": list(self.checks_run),
            "checks_skipped": list(self.checks_skipped),
            "thresholds": dict(self.thresholds),
            "tree_sha256": self.tree_sha256,
            "findings": [finding.to_dict() for finding in self.findings],
        }

    def summary(self) -> str:
        """A few readable lines: the verdict, the checks, then every finding."""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"Release audit {verdict}: {len(self.errors)} errors, {len(self.warnings)} warnings",
            f"checks run: {', '.join(self.checks_run) or 'none'}",
        ]
        if self.checks_skipped:
            lines.append(f"checks skipped: {', '.join(self.checks_skipped)}")
        lines.extend(f"  {finding}" for finding in self.findings)
        return "\n".join(lines)

    __str__ = summary


def audit(
    release: Release | str | os.PathLike,
    conversations: Any = None,
    *,
    scrubber: Any = None,
    min_users: int | None = None,
    min_conversations: int | None = None,
    labels: Sequence[str] | None = None,
    facet_values: dict[str, Sequence[Any]] | None = None,
) -> AuditReport:
    """Check a release against the thresholds, the differencing rule, the accounting, PII and its private input.

    Parameters
    ----------
    release : Release, str or path
        A release, or the directory a release was saved to.
    conversations : optional
        The private input the release was made from: anything :func:`clio_lite.load_conversations` reads (a path,
        a list of dicts, a DataFrame) or the ``Conversations`` it returned. Without it ``rare_ngrams`` and
        ``identifiers`` are skipped (and listed in ``checks_skipped``).
    scrubber : object, optional
        Anything with ``scrub(texts) -> ScrubResult``; ``None`` uses :class:`clio_lite.scrub.PresidioScrubber`.
    min_users, min_conversations : int, optional
        Thresholds to audit against; by default those recorded in the manifest.
    labels : sequence of str, optional
        For each conversation (in the order :func:`clio_lite.load_conversations` gives them), the id of the deepest
        released node holding it (:attr:`Clio.labels_`); with ``facet_values``, lets ``facets`` re-derive cells.
    facet_values : dict of str to sequence, optional
        Each facet's value for each conversation, in the same order.

    Returns
    -------
    AuditReport
        ``report.passed`` is False when any finding is an error.

    Examples
    --------
    >>> import clio_lite as cl
    >>> report = cl.audit("release/", "chats.jsonl")          # doctest: +SKIP
    >>> report.passed, [f.check for f in report.errors]       # doctest: +SKIP
    (True, [])
    """
    if not isinstance(release, Release):
        release = Release.load(release)
    recorded = release.manifest.get("thresholds", {})
    min_users = recorded.get("min_users") if min_users is None else min_users
    min_conversations = recorded.get("min_conversations") if min_conversations is None else min_conversations
    if min_users is None or min_conversations is None:
        raise ValueError(
            "the release's manifest records no thresholds; pass min_users= and min_conversations= to audit it."
        )
    report = AuditReport(
        thresholds={"min_users": int(min_users), "min_conversations": int(min_conversations)},
        tree_sha256=release.tree.digest(),
    )

    def run(name: str, findings: Iterable[Finding]) -> None:
        found = list(findings)
        report.findings.extend(found)
        report.checks_run.append(name)
        logger.debug("audit %s: %d findings", name, len(found))

    dp = release.manifest.get("privacy", {}).get("mode") == "dp"
    run("thresholds", _check_thresholds(release, min_users, min_conversations))
    if dp:
        # Noised counts: a parent minus its children is a noisy number, not a group's size.
        report.checks_skipped.extend(EXACT_COUNT_CHECKS)
        run("accounting", _check_dp_accounting(release))
    else:
        run("differencing", _check_differencing(release, min_conversations))
        run("accounting", _check_accounting(release))
    run("facets", _check_facets(release, min_users))
    run("pii", _check_pii(release, scrubber if scrubber is not None else _default_scrubber()))
    if conversations is None:
        report.checks_skipped.extend(NEEDS_CONVERSATIONS)
        logger.info("audit: no conversations given; skipped %s", ", ".join(NEEDS_CONVERSATIONS))
    else:
        from .io import load_conversations

        convs = load_conversations(conversations)
        if labels is not None and facet_values:
            report.findings.extend(_rederive_facets(release, convs, labels, facet_values, min_users))
        run("rare_ngrams", _check_rare_ngrams(release, convs, min_users))
        run("identifiers", _check_identifiers(release, convs))
    logger.debug("audit %s: %d errors, %d warnings", "passed" if report.passed else "failed",
                len(report.errors), len(report.warnings))
    return report


@functools.cache
def _default_scrubber() -> Any:
    # Loading Presidio and spaCy takes seconds; the scrubber holds no state between calls, so one serves every audit.
    from .scrub import PresidioScrubber

    return PresidioScrubber()


# -- counts ---------------------------------------------------------------------------------------------------


def _check_thresholds(release: Release, min_users: int, min_conversations: int) -> Iterator[Finding]:
    for node in release.tree:
        if node.users < min_users:
            yield Finding("thresholds", node.id, "users", f"{node.users} distinct users < min_users={min_users}")
        if node.conversations < min_conversations:
            yield Finding(
                "thresholds", node.id, "conversations",
                f"{node.conversations} conversations < min_conversations={min_conversations}",
            )


def _check_differencing(release: Release, min_conversations: int) -> Iterator[Finding]:
    tree = release.tree
    for node in tree:
        children = tree.children(node.id)
        if not children:
            continue
        remainder = node.conversations - sum(child.conversations for child in children)
        if remainder != 0 and remainder < min_conversations:
            yield Finding(
                "differencing", node.id, "conversations",
                f"{node.conversations} conversations minus its {len(children)} released children's leaves a "
                f"remainder of {remainder}, neither 0 nor >= min_conversations={min_conversations}",
            )
    counts = release.manifest.get("counts", {})
    if "released" not in counts:
        yield Finding("differencing", None, "counts", "the manifest has no released count to check the top level")
        return
    top = sum(root.conversations for root in tree.roots)
    if counts["released"] != top:
        yield Finding(
            "differencing", None, "counts.released",
            f"the manifest says {counts['released']} conversations were released but the top-level clusters hold "
            f"{top}; the difference ({counts['released'] - top}) is a group no cluster describes",
        )


def _check_accounting(release: Release) -> Iterator[Finding]:
    counts = release.manifest.get("counts", {})
    needed = ("read", "released", "suppressed", "unclustered", "rejected")
    missing = [key for key in needed if not isinstance(counts.get(key), int)]
    if missing:
        yield Finding("accounting", None, "counts", f"the manifest's counts lack {', '.join(missing)}")
        return
    # Conversations a facet filter kept out of clustering (Clio(facet_filter=...)) are a bucket of their own.
    total = counts["released"] + counts["suppressed"] + counts["unclustered"] + counts["rejected"]
    total += counts.get("filtered_out", 0)
    if counts["read"] != total:
        yield Finding(
            "accounting", None, "counts",
            f"read={counts['read']} but released + suppressed + unclustered + rejected + filtered_out = {total}",
        )
    if any(value < 0 for key, value in counts.items() if isinstance(value, int)):
        yield Finding("accounting", None, "counts", f"a negative count: {counts}")
    if isinstance(counts.get("accepted"), int) and counts["accepted"] != counts["read"] - counts["rejected"]:
        yield Finding(
            "accounting", None, "counts.accepted",
            f"accepted={counts['accepted']} but read - rejected = {counts['read'] - counts['rejected']}",
        )
    if isinstance(counts.get("in_released_leaves"), int):
        leaves = sum(node.conversations for node in release.tree.leaves)
        if counts["in_released_leaves"] != leaves:
            yield Finding(
                "accounting", None, "counts.in_released_leaves",
                f"in_released_leaves={counts['in_released_leaves']} but the released leaves hold {leaves}",
            )


def _check_dp_accounting(release: Release) -> Iterator[Finding]:
    counts = release.manifest.get("counts", {})
    top = sum(root.conversations for root in release.tree.roots)
    leaves = sum(node.conversations for node in release.tree.leaves)
    if counts.get("released") != top:
        yield Finding("accounting", None, "counts.released",
                      f"released={counts.get('released')} but the top-level clusters hold {top}")
    if counts.get("in_released_leaves") != leaves:
        yield Finding("accounting", None, "counts.in_released_leaves",
                      f"in_released_leaves={counts.get('in_released_leaves')} but the released leaves hold {leaves}")
    for node in release.tree:
        children = release.tree.children(node.id)
        if children and node.conversations < sum(child.conversations for child in children):
            yield Finding("accounting", node.id, "conversations",
                          f"{node.conversations} conversations, fewer than its children's "
                          f"{sum(child.conversations for child in children)}: noised counts were not made consistent")


# -- facets ---------------------------------------------------------------------------------------------------


def _check_facets(release: Release, min_users: int) -> Iterator[Finding]:
    tree = release.tree
    for node in tree:
        for facet, cells in node.facets.items():
            for value, count in cells.items():
                if count < min_users:
                    yield Finding(
                        "facets", node.id, f"facets.{facet}.{value}",
                        f"{count} conversations: fewer than min_users={min_users}, so fewer distinct users",
                    )
            if sum(cells.values()) > node.conversations:
                yield Finding(
                    "facets", node.id, f"facets.{facet}",
                    f"the cells add up to {sum(cells.values())}, more than the node's {node.conversations}",
                )
            children = tree.children(node.id)
            if not children:
                continue
            for value, count in cells.items():
                left = count - sum(child.facets.get(facet, {}).get(value, 0) for child in children)
                if 0 < left < min_users:
                    yield Finding(
                        "facets", node.id, f"facets.{facet}.{value}",
                        f"{count} minus its released children's {count - left} leaves {left} conversations, a "
                        f"group below min_users={min_users} computable by subtraction",
                    )


def _rederive_facets(
    release: Release, conversations: Any, labels: Sequence[str], facet_values: dict[str, Sequence[Any]],
    min_users: int,
) -> Iterator[Finding]:
    labels = [str(label) for label in labels]
    if len(labels) != len(conversations):
        raise ValueError(f"audit: {len(labels)} labels for {len(conversations)} conversations")
    users = [conversation.user_id for conversation in conversations]
    for node in release.tree:
        inside = [i for i, label in enumerate(labels) if label == node.id or label.startswith(node.id + ".")]
        for facet, cells in node.facets.items():
            values = facet_values.get(facet)
            if values is None:
                continue
            for value, count in cells.items():
                having = [i for i in inside if values[i] is not None and str(values[i]) == value]
                if not having:
                    continue  # "other", or a value no conversation of the node has: caught below if counted
                distinct = len({users[i] for i in having})
                if count > len(having) or distinct < min_users:
                    yield Finding(
                        "facets", node.id, f"facets.{facet}.{value}",
                        f"shows {count} conversations; the node holds {len(having)} with this value, from "
                        f"{distinct} distinct users (min_users={min_users})",
                    )


# -- text -----------------------------------------------------------------------------------------------------


def release_strings(release: Release, facets: bool = True) -> list[tuple[str, str, str]]:
    """Every free-text string of a release as ``(node_id, field, text)``: name, description, each keyword, and each
    facet's name and values.

    Examples
    --------
    >>> from clio_lite.release import ClusterNode, ClusterTree
    >>> node = ClusterNode("0", None, 1, "Pandas", "Conversations about pandas.", ("pandas",), 50, 25, 1.0, 0, 0)
    >>> release_strings(Release(ClusterTree([node]), {}))
    [('0', 'name', 'Pandas'), ('0', 'description', 'Conversations about pandas.'), ('0', 'keywords[0]', 'pandas')]
    """
    strings = []
    for node in release.tree:
        strings.append((node.id, "name", node.name))
        strings.append((node.id, "description", node.description))
        strings.extend((node.id, f"keywords[{i}]", keyword) for i, keyword in enumerate(node.keywords))
        # Facet values are text too (an LLM facet's free-text answer, say): scanned for PII and identifiers.
        for facet, cells in sorted(node.facets.items() if facets else ()):
            strings.append((node.id, "facets", facet))
            strings.extend((node.id, f"facets[{facet}]", value) for value in sorted(cells))
    return strings


#: Entity types judged by how the detected span looks (see :func:`pii_severity`); every other type is an error.
NAME_ENTITIES = frozenset({"PERSON"})


def pii_severity(entity: str, span: str | None) -> str:
    """How serious a scrubber's hit on a release string is.

    Structured entities (e-mail, phone, card, IP, street address, IBAN, SSN, URL...) are errors: no topic word looks
    like one. A ``PERSON`` hit is an error only when it looks like a full name: two or more words, each capitalised,
    within one term (not across the title separator ``" · "``). spaCy's small model tags single capitalised title
    words ("Pandas", "Docker") and lower-case keyword pairs ("ci runner", "airline miles") as people; those are
    warnings, and whether such a word is one person's is what ``rare_ngrams`` decides. A span that cannot be
    recovered is an error.

    Examples
    --------
    >>> pii_severity("PERSON", "Pandas"), pii_severity("PERSON", "ci runner"), pii_severity("PERSON", "Maria Gonzalez")
    ('warning', 'warning', 'error')
    >>> pii_severity("EMAIL_ADDRESS", "jane@example.com")
    'error'
    """
    if entity not in NAME_ENTITIES or span is None:
        return ERROR
    words = _WORD.findall(span)
    looks_like_a_name = len(words) >= 2 and "·" not in span and all(word[:1].isupper() for word in words)
    return ERROR if looks_like_a_name else WARNING


def _check_pii(release: Release, scrubber: Any) -> Iterator[Finding]:
    strings = release_strings(release)
    if not strings:
        return
    scrubbed = scrubber.scrub([text for _, _, text in strings]).texts
    for (node_id, where, text), clean in zip(strings, scrubbed, strict=True):
        if clean == text:
            continue
        for entity, span in detected_entities(text, clean):
            quoted = f" ({span!r})" if span is not None else ""
            yield Finding("pii", node_id, where, f"{entity}{quoted} detected in {text!r}", pii_severity(entity, span))


def detected_entities(original: str, scrubbed: str) -> list[tuple[str, str | None]]:
    """The entities a scrubber replaced, as ``(type, original span)``, recovered from the two texts.

    The span is ``None`` when the scrubbed text cannot be aligned with the original (a scrubber that rewrote more
    than the entities); placeholders already present in the original are not counted.

    Examples
    --------
    >>> detected_entities("Mail jane@example.com now", "Mail <EMAIL_ADDRESS> now")
    [('EMAIL_ADDRESS', 'jane@example.com')]
    """
    parts = _PLACEHOLDER_SPLIT.split(scrubbed)
    literals, entities = parts[0::2], parts[1::2]
    if not entities:
        return []
    pattern = "(.+?)".join(re.escape(literal) for literal in literals)
    match = re.fullmatch(pattern, original, flags=re.DOTALL)
    if match is None:
        before = Counter(_PLACEHOLDER_SPLIT.findall(original))
        after = Counter(entities)
        return [(entity, None) for entity in sorted((after - before).elements())]
    return [
        (entity, span) for entity, span in zip(entities, match.groups(), strict=True) if span != f"<{entity}>"
    ]


def segments(text: str) -> list[list[str]]:
    """A release string as runs of lowercased words, cut at punctuation that touches whitespace.

    The title separator ``" · "`` and the commas and semicolons between keywords in a description end a segment,
    so no n-gram spans two keywords; punctuation inside a token (``node.js``) only splits words.

    Examples
    --------
    >>> segments("Python code · Pandas")
    [['python', 'code'], ['pandas']]
    >>> segments("Conversations about node.js, e-mail and sql; also tests.")
    [['conversations', 'about', 'node', 'js'], ['e', 'mail', 'and', 'sql'], ['also', 'tests']]
    """
    runs = (_WORD.findall(part.lower()) for part in _BOUNDARY.split(text))
    return [words for words in runs if words]


_SLOT = "\x00{}\x00"
_SLOT_SPLIT = re.compile(r"\x00\d+\x00")


@functools.cache
def _namer_templates() -> tuple[tuple[re.Pattern[str], ...], frozenset[str]]:
    """The keyword namer's description templates as patterns with one group per keyword slot, and its fixed texts.

    Derived from :mod:`clio_lite.name` itself, so the auditor follows the namer when its wording changes.
    """
    from .name import release_templates, unnamed

    patterns: dict[str, re.Pattern[str]] = {}
    for template in release_templates([_SLOT.format(i) for i in range(8)]):
        source = "(.+?)".join(re.escape(literal) for literal in _SLOT_SPLIT.split(template))
        patterns.setdefault(source, re.compile(source, flags=re.DOTALL))
    fallback = unnamed()
    # Most slots first: the one-slot pattern would swallow a whole list of keywords as one slot; then the most fixed
    # wording, so that a description is read by its own template before a title's "A and B" could match it.
    ordered = tuple(sorted(patterns.values(), key=lambda pattern: (-pattern.groups, -len(pattern.pattern))))
    return ordered, frozenset({fallback.name, fallback.description})


def data_segments(text: str) -> list[list[str]]:
    """The runs of words of a release string that came from the data, not from the namer's templates.

    A string the keyword namer writes from a template (:func:`clio_lite.name.release_templates`: "Conversations
    about X and Y, also mentioning Z.", a title "X and Y") contributes only its slots; its fixed wording was written
    by clio_lite, not by a user, and a bigram across a slot's edge ("about money", "money and") is the template's.
    A fixed text ("Unnamed cluster") contributes nothing. Any other string (a keyword, a one-phrase title, an LLM's
    description) is taken whole, cut by :func:`segments`. A string of another author that happens to fit a template
    ("Rock and roll") is read by its slots too: each slot's words are still checked, only the n-grams across the
    template's words are not.

    Examples
    --------
    >>> data_segments("Conversations about git merge and rebase, also mentioning commit messages.")
    [['git', 'merge'], ['rebase'], ['commit', 'messages']]
    >>> data_segments("Reset my password and locked accounts")
    [['reset', 'my', 'password'], ['locked', 'accounts']]
    >>> data_segments("Unnamed cluster")
    []
    """
    patterns, fixed = _namer_templates()
    if text in fixed:
        return []
    for pattern in patterns:
        match = pattern.fullmatch(text)
        if match:
            return [run for slot in match.groups() for run in segments(slot)]
    return segments(text)


def ngrams(words: Sequence[str], max_n: int = MAX_NGRAM) -> Iterator[tuple[str, ...]]:
    """Every 1- to ``max_n``-gram of ``words``, as tuples.

    Examples
    --------
    >>> list(ngrams(["a", "b", "c"], 2))
    [('a',), ('a', 'b'), ('b',), ('b', 'c'), ('c',)]
    """
    for start in range(len(words)):
        for n in range(1, max_n + 1):
            if start + n > len(words):
                break
            yield tuple(words[start : start + n])


def ngram_users(
    wanted: set[tuple[str, ...]], conversations: Iterable[Any], cap: int | None = None
) -> dict[tuple[str, ...], set[str]]:
    """For each n-gram in ``wanted``, the distinct users whose user turns contain it (at most ``cap`` of them).

    Only the wanted n-grams are indexed: a conversation is scanned once, and n-grams are built only where a word
    of a wanted n-gram starts. Users stop being collected for an n-gram once ``cap`` are known.

    Examples
    --------
    >>> from clio_lite.schema import Conversation, Message
    >>> conv = Conversation("c1", "u1", (Message("user", "Pandas merge help"),))
    >>> ngram_users({("pandas", "merge"), ("numpy",)}, [conv])
    {('pandas', 'merge'): {'u1'}}
    """
    max_n = max((len(gram) for gram in wanted), default=0)
    first_words = {gram[0] for gram in wanted}
    users: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for conversation in conversations:
        words = _WORD.findall(conversation.user_text().lower())
        for start, word in enumerate(words):
            if word not in first_words:
                continue
            for n in range(1, max_n + 1):
                if start + n > len(words):
                    break
                gram = tuple(words[start : start + n])
                if gram in wanted:
                    found = users[gram]
                    if cap is None or len(found) < cap:
                        found.add(conversation.user_id)
    return dict(users)


def _check_rare_ngrams(release: Release, conversations: Any, min_users: int) -> Iterator[Finding]:
    # Facet cells are left to the facets check, which holds each value to min_users users of the node as a whole
    # value; their words are mostly the library's own labels ("en", "turns", "other"), not what users typed.
    strings = release_strings(release, facets=False)
    grams_of = [{gram for run in data_segments(text) for gram in ngrams(run)} for _, _, text in strings]
    wanted = set().union(*grams_of) if grams_of else set()
    support = ngram_users(wanted, conversations, cap=min_users)
    logger.debug("audit rare_ngrams: %d distinct n-grams in %d release strings", len(wanted), len(strings))
    for (node_id, where, text), grams in zip(strings, grams_of, strict=True):
        rare = sorted(
            (gram for gram in grams if 0 < len(support.get(gram, ())) < min_users),
            key=lambda gram: (-len(gram), gram),
        )
        for gram in rare:
            yield Finding(
                "rare_ngrams", node_id, where,
                f"{' '.join(gram)!r} (in {text!r}) occurs in the conversations of only "
                f"{len(support[gram])} distinct users (< min_users={min_users})",
            )


def _check_identifiers(release: Release, conversations: Any) -> Iterator[Finding]:
    identifiers = {
        value.lower()
        for conversation in conversations
        for value in (str(conversation.id), str(conversation.user_id))
        # Digits-only ids are left out: "1200" cannot be told apart from a count of 1,200 conversations.
        if len(value) >= MIN_IDENTIFIER_LENGTH and not value.isdigit()
    }
    if not identifiers:
        return
    places = [(node_id, where, text) for node_id, where, text in release_strings(release)]
    places.append((None, "manifest", json.dumps(release.manifest, sort_keys=True, ensure_ascii=False)))
    lengths = sorted({len(identifier) for identifier in identifiers})
    for node_id, where, text in places:
        lowered = text.lower()
        # The text's substrings of each identifier length, intersected with the identifiers: a pass over the text
        # per distinct length rather than a scan of the text per identifier.
        found = sorted(
            identifier
            for size in lengths
            for identifier in identifiers & {lowered[i : i + size] for i in range(len(lowered) - size + 1)}
        )
        for identifier in found:
            quoted = f" in {text!r}" if node_id is not None else ""
            yield Finding(
                "identifiers", node_id, where,
                f"the conversation or user id {identifier!r} appears{quoted}",
            )
