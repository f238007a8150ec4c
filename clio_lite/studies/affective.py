"""The affective-use study: how often people turn to the chatbot for advice, coaching, support and company.

After Anthropic's study of affective use of Claude (2025): conversations are labelled with an affective taxonomy
(multi-label) — interpersonal advice, coaching, psychotherapy or counselling, companionship, romantic or sexual
roleplay — or as content creation (writing done *for* the user, such as a story about grief: excluded even when
its theme is emotional) or not affective. :func:`run` then reports

* the prevalence of each label among all accepted conversations, with a 95% bootstrap interval that resamples
  **users** (the unit that the privacy thresholds count, and whose conversations are not independent of each
  other: a heavy user's fifty conversations are one draw, not fifty);
* a released, k-anonymous cluster tree of the affective conversations only (the normal Clio path with a facet
  filter), whose nodes carry breakdowns by affective label, language, turns and sentiment shift;
* the sentiment shift: for affective conversations with at least six user messages, the mean VADER compound
  score (−1…+1) of the last three user messages minus that of the first three, averaged over conversations, with
  a 95% user-bootstrap interval.

Every number is reported only where at least ``min_users`` distinct users support it; the rest is withheld.

The labels come from an offline zero-shot classifier (:func:`affective_facet`): embedding similarity between the
scrubbed user text and the label descriptions below. Its precision and recall on the fixture corpus are measured
by ``benchmarks/facets.py`` (see ``docs/facets.md``); pass any other facet named ``"affective"`` with the same
labels (an LLM facet, say) as ``classifier``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..facets import EmbeddingClassifier, Facet, SentimentShift
from ..pipeline import Clio
from ..release import Release

AFFECTIVE_LABELS = ("interpersonal_advice", "coaching", "counselling", "companionship", "roleplay")
CONTENT_CREATION = "content_creation"
NOT_AFFECTIVE = "not_affective"
LABELS = (*AFFECTIVE_LABELS, CONTENT_CREATION, NOT_AFFECTIVE)
ANY_AFFECTIVE = "affective (any)"

#: What a conversation of each label sounds like, in the user's words (the classifier compares against these).
LABEL_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "interpersonal_advice": (
        "I need advice about a conflict with my partner, a family member or a friend, and how to talk to them.",
        "How do I handle my relationship with my boyfriend, girlfriend, husband, wife, parents or siblings?",
        "My friend and I had a falling out. What should I say to fix our friendship?",
        "My best friend has been distant lately. How do I make friends as an adult or tell a friend they hurt me?",
    ),
    "coaching": (
        "Help me set goals, build better habits, stop procrastinating and stay motivated.",
        "I want to change careers and need a plan and encouragement to make the transition.",
        "Coach me to be more productive and disciplined so I reach my personal goals.",
    ),
    "counselling": (
        "I feel anxious, depressed and overwhelmed, and I need emotional support to cope.",
        "Someone I love died. I am grieving and I can't stop crying.",
        "I have panic attacks and my mental health is struggling. Help me calm down.",
        "I feel so lonely and sad, I have no one to talk to about how I feel.",
    ),
    "companionship": (
        "I feel lonely and just want someone friendly to talk to and keep me company.",
        "Hey, how's your day going? Let's just have a casual chat about fun things.",
        "Do you have feelings? Are you conscious? What is it like to be an AI?",
    ),
    "roleplay": (
        "Let's roleplay: pretend to be my boyfriend or girlfriend on a romantic date and stay in character.",
        "Play a character and stay in character in an interactive story or adventure game with me.",
    ),
    CONTENT_CREATION: (
        "Write a short story, a poem, song lyrics or a screenplay scene for me.",
        "Draft an email, a cover letter, an essay or a blog post for me, or fix its grammar.",
        "Write a piece of fiction about a character's feelings for my creative writing assignment.",
        "Write a story or a poem about grief, loneliness or heartbreak, under 500 words, with a title.",
    ),
    NOT_AFFECTIVE: (
        "Help me debug my code, fix an error in my program or write a SQL query.",
        "How do I resolve a git merge conflict, rebase my branch or fix my CI pipeline?",
        "My Docker container, Linux server or web app (React, CSS, Node) is not working.",
        "How do I install a Python package or filter a pandas dataframe?",
        "Explain this math, science or history homework problem.",
        "Plan a trip, suggest a recipe, or help with my budget, taxes, investments or resume.",
        "How do I prepare for a job interview or negotiate my salary?",
        "How do I pay off my credit card debt?",
        "I have a question about a health symptom, my sleep, nutrition or exercise.",
        "Help me learn a language: grammar, vocabulary and pronunciation.",
    ),
}

#: Tuned on the dev split of the fixture study corpus by ``benchmarks/facets.py`` (see ``docs/facets.md``).
DEFAULT_THRESHOLD = 0.2
DEFAULT_MARGIN = 0.05


def affective_facet(
    embedder: Any = None,
    threshold: float | dict[str, float] = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    examples: dict[str, Sequence[str]] | None = None,
    descriptions: dict[str, Sequence[str]] | None = None,
) -> EmbeddingClassifier:
    """The offline affective classifier: a multi-label zero-shot facet named ``"affective"``.

    Its values are tuples of labels from :data:`LABELS`, best first: one or more affective labels, or
    ``("content_creation",)`` or ``("not_affective",)`` alone (a conversation closest to one of those is never
    also affective: the content-creation exclusion). ``examples`` adds few-shot examples per label.
    """
    return EmbeddingClassifier(
        "affective",
        descriptions if descriptions is not None else LABEL_DESCRIPTIONS,
        examples=examples,
        multi_label=True,
        threshold=threshold,
        margin=margin,
        exclusive=(CONTENT_CREATION, NOT_AFFECTIVE),
        default=NOT_AFFECTIVE,
        embedder=embedder,
    )


def is_affective(labels: Any) -> bool:
    """Whether a value of the affective facet holds an affective label."""
    return labels is not None and any(label in AFFECTIVE_LABELS for label in labels)


# -- statistics -------------------------------------------------------------------------------------------------


def _user_weights(n_users: int, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_bootstrap, n_users)``: how often each user is drawn when ``n_users`` users are drawn with replacement."""
    draws = rng.integers(0, n_users, size=(n_bootstrap, n_users))
    weights = np.zeros((n_bootstrap, n_users))
    np.add.at(weights, (np.repeat(np.arange(n_bootstrap), n_users), draws.ravel()), 1.0)
    return weights


def user_bootstrap_ratio(
    numerator: np.ndarray, denominator: np.ndarray, user_codes: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> tuple[float, float]:
    """A 95% percentile interval for ``sum(numerator) / sum(denominator)``, resampling users with replacement.

    ``numerator`` and ``denominator`` are per conversation; ``user_codes`` their users (integer codes).
    """
    users, codes = np.unique(user_codes, return_inverse=True)
    num = np.bincount(codes, weights=numerator, minlength=len(users))
    den = np.bincount(codes, weights=denominator, minlength=len(users))
    weights = _user_weights(len(users), n_bootstrap, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = (weights @ num) / (weights @ den)
    low, high = np.nanpercentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def prevalence(
    labels: Sequence[Any], user_codes: np.ndarray, min_users: int, n_bootstrap: int = 1000, random_state: int = 0
) -> pd.DataFrame:
    """The share of conversations with each label, with a 95% user-bootstrap interval, k-supported rows only.

    Parameters
    ----------
    labels : sequence of tuples of str
        The affective facet's value for every conversation (the denominator is all of them).
    user_codes : np.ndarray
        The user of each conversation.
    min_users : int
        A row is reported only if at least this many distinct users have a conversation with its label;
        otherwise its numbers are withheld (``NaN``) and ``reported`` is False.

    Returns
    -------
    pandas.DataFrame
        One row per label of :data:`LABELS` plus ``"affective (any)"``: ``label``, ``conversations``,
        ``users``, ``share``, ``ci_low``, ``ci_high``, ``reported``.
    """
    user_codes = np.asarray(user_codes)
    rng = np.random.default_rng(random_state)
    ones = np.ones(len(labels))
    rows = []
    for label in (*AFFECTIVE_LABELS, ANY_AFFECTIVE, CONTENT_CREATION, NOT_AFFECTIVE):
        if label == ANY_AFFECTIVE:
            has = np.array([is_affective(value) for value in labels], dtype=float)
        else:
            has = np.array([value is not None and label in value for value in labels], dtype=float)
        users = len(np.unique(user_codes[has > 0]))
        if users >= min_users:
            low, high = user_bootstrap_ratio(has, ones, user_codes, n_bootstrap, rng)
            rows.append((label, int(has.sum()), users, float(has.mean()), low, high, True))
        else:
            rows.append((label, None, None, np.nan, np.nan, np.nan, False))
    table = pd.DataFrame(rows, columns=["label", "conversations", "users", "share", "ci_low", "ci_high", "reported"])
    table["conversations"] = table["conversations"].astype("Int64")
    table["users"] = table["users"].astype("Int64")
    return table


def sentiment_summary(
    shifts: Sequence[float | None], user_codes: np.ndarray, min_users: int, n_bootstrap: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """The mean sentiment shift over the conversations that have one, with a 95% user-bootstrap interval.

    Withheld (``reported`` False, no numbers) unless at least ``min_users`` distinct users have such a conversation.
    """
    mask = np.array([shift is not None for shift in shifts], dtype=bool)
    codes = np.asarray(user_codes)[mask]
    values = np.array([shift for shift in shifts if shift is not None], dtype=float)
    users = len(np.unique(codes))
    if users < min_users:
        return {"reported": False, "min_users": min_users}
    low, high = user_bootstrap_ratio(values, np.ones(len(values)), codes, n_bootstrap,
                                     np.random.default_rng(random_state))
    return {
        "reported": True,
        "conversations": int(len(values)),
        "users": users,
        "mean_shift": round(float(values.mean()), 4),
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "share_improving": round(float((values > 0).mean()), 4),
    }


# -- the study --------------------------------------------------------------------------------------------------


@dataclass
class AffectiveStudy:
    """What :func:`run` found. ``prevalence``, ``sentiment`` and ``release`` are k-supported and shareable.

    Attributes
    ----------
    prevalence : pandas.DataFrame
        See :func:`prevalence`.
    sentiment : dict
        See :func:`sentiment_summary`.
    release : Release
        The released tree of the affective conversations (with facet breakdowns), and its manifest.
    clio : Clio
        The fitted estimator; private (``clio.facet_values_``, ``clio.labels_`` are per conversation).
    """

    prevalence: pd.DataFrame
    sentiment: dict[str, Any]
    release: Release
    clio: Clio = field(repr=False)

    @property
    def table(self) -> pd.DataFrame:
        """The study's table: prevalence per label, then the sentiment shift, as display strings."""
        rows = []
        for row in self.prevalence.itertuples():
            if row.reported:
                value = f"{row.share:.1%} [{row.ci_low:.1%}, {row.ci_high:.1%}]"
                rows.append((row.label, value, int(row.conversations), int(row.users)))
            else:
                rows.append((row.label, "withheld (too few users)", None, None))
        s = self.sentiment
        if s["reported"]:
            value = f"{s['mean_shift']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]"
            rows.append(("sentiment shift (last 3 − first 3)", value, s["conversations"], s["users"]))
        else:
            rows.append(("sentiment shift (last 3 − first 3)", "withheld (too few users)", None, None))
        return pd.DataFrame(rows, columns=["measure", "value [95% CI]", "conversations", "users"])

    def __str__(self) -> str:
        counts = self.release.counts
        return (
            f"{self.table.to_string(index=False)}\n"
            f"affective conversations clustered: {counts['accepted'] - counts['filtered_out']} of "
            f"{counts['accepted']}; released clusters: {len(self.release.tree)}"
        )


def run(
    conversations: Any,
    min_users: int = 25,
    min_conversations: int = 50,
    classifier: Facet | None = None,
    extra_facets: Sequence[Any] = ("language", "turns"),
    n_bootstrap: int = 1000,
    random_state: int = 0,
    **clio_params: Any,
) -> AffectiveStudy:
    """Run the affective-use study on ``conversations`` (anything :func:`clio_lite.load_conversations` reads).

    Parameters
    ----------
    min_users, min_conversations : int
        The release thresholds; ``min_users`` also gates every number of the study's table.
    classifier : Facet or None
        The facet named ``"affective"`` that labels conversations; ``None`` uses :func:`affective_facet` with the
        pipeline's embedder.
    extra_facets : sequence
        More facets to break the released clusters down by (the sentiment shift is always added).
    n_bootstrap : int
        Bootstrap resamples (of users) for each interval.
    random_state : int
        Seeds the pipeline and the bootstrap.
    **clio_params
        Passed to :class:`clio_lite.Clio` (``cache_dir``, ``verbose``, ``embedder``...).

    Examples
    --------
    >>> from clio_lite.studies import affective
    >>> study = affective.run("chats.jsonl", min_users=25, min_conversations=50)   # doctest: +SKIP
    >>> print(study.table)                                                          # doctest: +SKIP
    """
    classifier = classifier if classifier is not None else affective_facet()
    if classifier.name != "affective":
        raise ValueError(f"the study's classifier must be named 'affective', got {classifier.name!r}")
    clio = Clio(
        min_users=min_users,
        min_conversations=min_conversations,
        facets=[classifier, *extra_facets, SentimentShift()],
        facet_filter={"affective": AFFECTIVE_LABELS},
        random_state=random_state,
        **clio_params,
    ).fit(conversations)
    user_codes = np.unique([c.user_id for c in clio.conversations_], return_inverse=True)[1]
    labels = list(clio.facet_values_["affective"])
    # The shift is measured on affective conversations only, as in the study it follows.
    shifts = [
        shift if is_affective(value) else None
        for shift, value in zip(clio.facet_values_["sentiment_shift"], labels, strict=True)
    ]
    return AffectiveStudy(
        prevalence=prevalence(labels, user_codes, min_users, n_bootstrap, random_state),
        sentiment=sentiment_summary(shifts, user_codes, min_users, n_bootstrap, random_state),
        release=clio.release_,
        clio=clio,
    )
