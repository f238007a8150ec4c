"""The accounting invariant, per run and per stage: every record read ends released, suppressed, unclustered or
rejected (or, with a facet filter, filtered out), and every stage accounts for each conversation it was given.

``counts_by_stage`` records, for each stage, how many conversations went in, how many came out, and where the rest
went; ``check_counts_by_stage`` checks at every boundary that ``in == out + the rest`` and that a stage's ``out`` is
the next stage's ``in``, and that the stages agree with the run's totals::

    read = released + suppressed + unclustered + rejected

The pipeline records the result in the manifest (``counts_by_stage``) and raises :class:`AccountingError` if any
check fails: a lost or invented conversation is a bug, never a rounding matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: The stages in the order of the data flow, as keys of ``counts_by_stage``.
STAGES = ("load", "scrub", "embed", "reduce", "cluster", "gate")
#: The same with a facet filter (``Clio(facet_filter=...)``), which sets conversations aside before embedding.
STAGES_WITH_FILTER = ("load", "scrub", "facets", "embed", "reduce", "cluster", "gate")


class AccountingError(RuntimeError):
    """Conversations were lost or invented between two stages."""


def check_stage_rows(n_conversations: int, **rows: int) -> None:
    """Each per-conversation stage must return one row per conversation it was given.

    Checked before the rows of different stages are combined, so that a custom stage that drops or adds rows fails
    here, naming itself, instead of later with an index error or, worse, silently.

    Examples
    --------
    >>> check_stage_rows(3, scrub=3, embed=2)
    Traceback (most recent call last):
    ...
    clio_lite.accounting.AccountingError: the embed stage returned 2 rows for 3 conversations; ...
    """
    for stage, n_rows in rows.items():
        if n_rows != n_conversations:
            raise AccountingError(
                f"the {stage} stage returned {n_rows} rows for {n_conversations} conversations; every stage must "
                f"return exactly one result per input, in order (check a custom {stage} object, if you passed one)"
            )


def counts_by_stage(
    n_read: int,
    n_rejected: int,
    n_scrubbed: int,
    n_embedded: int,
    n_reduced: int,
    assignment: np.ndarray,
    labels: np.ndarray,
    unclustered_label: str,
    suppressed_label: str,
    n_filtered_out: int | None = None,
) -> dict[str, dict[str, int]]:
    """How many conversations each stage took in, gave out, and set aside (and why).

    ``n_filtered_out`` (a run with a facet filter) adds a ``facets`` stage after ``scrub`` that sets aside the
    conversations the filter kept out of clustering.

    The cluster stage's numbers come from the clusterer's assignment (``-1``: unclustered); the gate's from the
    final per-conversation labels, a separate computation, so that the two are checked against each other.
    """
    n_accepted = n_read - n_rejected
    clustered = int((np.asarray(assignment) >= 0).sum())
    labels = np.asarray(labels, dtype=object)
    suppressed = int((labels == suppressed_label).sum())
    released = int(len(labels) - suppressed - (labels == unclustered_label).sum())
    by_stage = {
        "load": {"in": n_read, "out": n_accepted, "rejected": n_rejected},
        "scrub": {"in": n_accepted, "out": n_scrubbed},
    }
    n_to_embed = n_scrubbed
    if n_filtered_out is not None:
        n_to_embed = n_scrubbed - n_filtered_out
        by_stage["facets"] = {"in": n_scrubbed, "out": n_to_embed, "filtered_out": n_filtered_out}
    return {
        **by_stage,
        "embed": {"in": n_to_embed, "out": n_embedded},
        "reduce": {"in": n_embedded, "out": n_reduced},
        "cluster": {"in": len(assignment), "out": clustered, "unclustered": len(assignment) - clustered},
        "gate": {"in": clustered, "out": released, "suppressed": suppressed},
    }


def check_counts_by_stage(by_stage: Mapping[str, Mapping[str, int]], counts: Mapping[str, Any]) -> None:
    """Raise :class:`AccountingError` unless every stage boundary and the run's totals add up."""
    problems = []
    expected = STAGES_WITH_FILTER if "facets" in by_stage else STAGES
    if tuple(by_stage) != expected:
        problems.append(f"stages {list(by_stage)} are not {list(expected)}")
    previous_out = None
    for stage, numbers in by_stage.items():
        set_aside = sum(value for key, value in numbers.items() if key not in ("in", "out"))
        if numbers["in"] != numbers["out"] + set_aside:
            problems.append(f"{stage}: {numbers['in']} in, but {numbers['out']} out + {set_aside} set aside")
        if previous_out is not None and numbers["in"] != previous_out:
            problems.append(f"{stage} took in {numbers['in']}, but the stage before gave out {previous_out}")
        previous_out = numbers["out"]
    totals = {
        "read": by_stage["load"]["in"],
        "rejected": by_stage["load"]["rejected"],
        "unclustered": by_stage["cluster"]["unclustered"],
        "suppressed": by_stage["gate"]["suppressed"],
        "released": by_stage["gate"]["out"],
    }
    if "facets" in by_stage:
        totals["filtered_out"] = by_stage["facets"]["filtered_out"]
    for key, value in totals.items():
        if counts.get(key) != value:
            problems.append(f"the run counts {counts.get(key)} {key}, the stages {value}")
    buckets = counts["released"] + counts["suppressed"] + counts["unclustered"] + counts["rejected"]
    if counts["read"] != buckets + counts.get("filtered_out", 0):
        problems.append("read != released + suppressed + unclustered + rejected + filtered_out")
    if problems:
        raise AccountingError(f"the accounting does not add up, a bug in clio_lite: {'; '.join(problems)}")
