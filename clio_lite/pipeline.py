"""Clio: the estimator that composes the stages, in the order of the data flow.

    conversations → validate → scrub PII → facets (→ filter) → embed → reduce → cluster tree → privacy gate → name
    → facet breakdowns → audit → Release

Only this module knows the order; every stage is a swappable object with a small protocol (see each module).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from .accounting import check_counts_by_stage, check_stage_rows, counts_by_stage
from .audit import audit
from .checkpoint import ArrayCheckpoints, MemmapWriter, ResultCache, fingerprint, hash_array, package_versions
from .cluster import HDBSCANClusterer, Hierarchy
from .embed import SentenceTransformerEmbedder, StaticEmbedder, model2vec_version
from .executor import embed_texts, make_executor, scrub_texts
from .facets import compute_facets, facet_keys, keep_mask, resolve
from .io import load_conversations
from .name import KeywordNamer, NodeToName
from .privacy import gate, tree_breakdowns
from .reduce import SampledMap, UMAPReducer, fit_sample_beside, one_blas_thread, transform_blocks
from .release import SCHEMA_VERSION, ClusterNode, ClusterTree, Release
from .schema import Conversations
from .scrub import PatternScrubber, PresidioScrubber

logger = logging.getLogger(__name__)

UNCLUSTERED = "<unclustered>"
SUPPRESSED = "<suppressed>"
FILTERED_OUT = "<filtered out>"
_VERSIONED_PACKAGES = (
    "clio_lite", "numpy", "scikit-learn", "torch", "sentence-transformers", "onnxruntime", "presidio-analyzer", "spacy",
    "umap-learn", "hdbscan",
)


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "clio_lite"


class Clio(BaseEstimator):
    """Turn conversations into a released, k-anonymous tree of named clusters.

    Parameters
    ----------
    min_users : int
        A cluster is released only if at least this many distinct users had conversations in it.
    min_conversations : int
        ... and only if it holds at least this many conversations.
    min_cluster_size : int or None
        The smallest group HDBSCAN may call a cluster; ``None`` uses ``min_conversations``, since anything
        smaller would be suppressed anyway.
    top_clusters : int
        About how many clusters the top level has.
    branching : int
        About how many times more clusters each level has than the one above.
    assign_outliers : bool
        Move each conversation HDBSCAN leaves outside every leaf (in a parent's remainder, or unclustered) into its
        nearest leaf; the privacy gate runs afterwards. The manifest counts how many moved (``reassigned``).
    facets : sequence of str or Facet, or None
        Facets to compute on every accepted conversation (registered names such as ``"language"``, ``"turns"``,
        ``"affective"``, or objects following :class:`clio_lite.facets.Facet`). Every released cluster carries a
        k-supported breakdown by each (``node.facets[name]``).
    facet_filter : mapping, callable or None
        Keep only the conversations whose facets pass, before clustering: ``{facet name: allowed values}`` (a
        multi-label facet passes when any of its labels is allowed) or a callable taking one conversation's
        ``{facet name: value}``. The others are counted as ``filtered_out`` in the manifest.
    scrubber, embedder, reducer, map_reducer, clusterer, namer : objects or None
        The stages; ``None`` picks the defaults (Presidio, all-MiniLM-L6-v2, UMAP to 5-D, a sampled 2-D UMAP map,
        HDBSCAN, the keyword namer). Any object with the same method works (see each module's protocol).
    cache_dir : str, Path, False or None
        Where stage results are kept between runs (scrubbed texts, embeddings, UMAP outputs), so that a rerun or
        a run restarted after a kill recomputes nothing already done; ``None`` means ``~/.cache/clio_lite``,
        ``False`` no cache. The cache holds scrubbed conversation text: keep it where the conversations themselves
        may live (see ``docs/scaling.md``).
    executor : "local", "ray", an executor object or None
        Where the scrub and embed stages run: on this machine (``None``, ``"local"``: scrubbing spreads over idle
        cores when there is enough of it, see :class:`clio_lite.executor.LocalExecutor`) or as Ray Data jobs on a Ray
        cluster (``"ray"``: the cluster in ``RAY_ADDRESS``, or a local one; or a
        :class:`clio_lite.executor.RayExecutor` with an address). Clustering always runs here. The reduce stage
        fits the default map's UMAP in a worker process beside the clustering UMAP when a core is free (a
        ``LocalExecutor``'s ``processes``: ``"auto"``, or ``1`` never, ``2`` or more always). Does not change the
        release.
    umap_fit_limit : int or None
        Above this many conversations, each UMAP is fitted on a seeded sample of this size and the rest is placed
        with ``transform`` (a reducer without ``transform`` is fitted on everything); ``None`` always fits on all.
        Above two such blocks, they are placed in worker processes on idle cores as well as in this one (same bytes).
    mode : {"default", "fast"}
        ``"fast"`` trades nuance for speed where the defaults are picked: a static embedding model distilled
        offline from all-MiniLM-L6-v2 (:class:`clio_lite.embed.StaticEmbedder`, needs the ``fast`` extra) and
        pattern-first scrubbing. Stages passed explicitly (``scrubber=``, ``embedder=``) are used as given. The
        audit keeps its full Presidio scan. Its measured speed and quality cost: docs/scaling.md, "Fast mode".
    map_fit_limit : int or None
        The default map (no ``map_reducer``): UMAP to 2-D of a seeded sample of at most this many embeddings, each
        other point placed among its nearest sample points in the 5-D clustering space
        (:class:`clio_lite.reduce.SampledMap`); ``None`` fits UMAP on all. A ``map_reducer`` of one's own is
        applied to the embeddings as before (with ``umap_fit_limit``).
    random_state : int, numpy Generator/RandomState or None
        Seeds every stochastic stage; an int makes the release byte-for-byte reproducible.
    verbose : bool
        Progress bars and stage timings in the log.
    privacy : {"k-anonymity", "dp"}
        ``"k-anonymity"`` (the default): exact counts behind the thresholds and the differencing-safe gate.
        ``"dp"``: user-level differential privacy for the counts, the choice of clusters and the keywords, given
        the cluster hierarchy (see :mod:`clio_lite.dp` and docs/privacy.md); the manifest's ``privacy`` entry
        records the mechanism and the budget spent per stage. A DP release is named by its DP keywords only.
    epsilon, delta : float
        The DP budget (``privacy="dp"`` only).
    max_conversations_per_user, max_terms_per_user : int
        Contribution bounds for DP: conversations kept per user, and terms each user may contribute.

    Attributes
    ----------
    release_ : Release
        What may be shared: the released tree and its manifest.
    labels_ : np.ndarray of str
        For each accepted conversation, the id of the deepest released cluster holding it, or ``"<unclustered>"``,
        ``"<suppressed>"`` or ``"<filtered out>"``. Private: it is per conversation and never part of the release.
    facet_values_ : dict of str to np.ndarray
        Each facet's value for each accepted conversation, in input order. Private, like ``labels_``.
    conversations_ : Conversations
        The accepted conversations and the rejected records with their reasons.
    audit_ : AuditReport
        The audit of ``release_`` against the conversations it came from (also recorded in its manifest).
    timings_ : dict
        Seconds spent in each stage.
    scrubber_, embedder_ : objects
        The scrubber and embedder ``fit`` used; :meth:`predict` sends new conversations through the same ones.
    embeddings_ : np.ndarray
        The embedding of each accepted conversation, in the order of ``labels_``. Private, like ``labels_``:
        :meth:`predict` finds new conversations' nearest neighbours among them. With a cache (``cache_dir`` not
        ``False``) a read-only ``np.memmap`` of a ``.npy`` under ``<cache_dir>/checkpoints/embed/``: on disk, not
        in RAM (see docs/scaling.md).

    Examples
    --------
    >>> import clio_lite as cl
    >>> clio = cl.Clio(min_users=25, min_conversations=50, random_state=0)   # doctest: +SKIP
    >>> clio.fit("chats.jsonl").release_.tree.show()                          # doctest: +SKIP
    """

    def __init__(
        self,
        min_users: int = 25,
        min_conversations: int = 50,
        min_cluster_size: int | None = None,
        top_clusters: int = 10,
        branching: int = 10,
        assign_outliers: bool = False,
        facets: Sequence[Any] | None = None,
        facet_filter: Any = None,
        scrubber: Any = None,
        embedder: Any = None,
        reducer: Any = None,
        map_reducer: Any = None,
        clusterer: Any = None,
        namer: Any = None,
        cache_dir: str | Path | bool | None = None,
        random_state: Any = None,
        verbose: bool = True,
        privacy: str = "k-anonymity",
        epsilon: float = 1.0,
        delta: float = 1e-5,
        max_conversations_per_user: int = 1,
        max_terms_per_user: int = 3,
        executor: Any = None,
        umap_fit_limit: int | None = 50_000,
        mode: str = "default",
        map_fit_limit: int | None = 20_000,
    ):
        self.min_users = min_users
        self.min_conversations = min_conversations
        self.min_cluster_size = min_cluster_size
        self.top_clusters = top_clusters
        self.branching = branching
        self.assign_outliers = assign_outliers
        self.facets = facets
        self.facet_filter = facet_filter
        self.scrubber = scrubber
        self.embedder = embedder
        self.reducer = reducer
        self.map_reducer = map_reducer
        self.clusterer = clusterer
        self.namer = namer
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.verbose = verbose
        self.privacy = privacy
        self.epsilon = epsilon
        self.delta = delta
        self.max_conversations_per_user = max_conversations_per_user
        self.max_terms_per_user = max_terms_per_user
        self.executor = executor
        self.umap_fit_limit = umap_fit_limit
        self.mode = mode
        self.map_fit_limit = map_fit_limit

    # -- the flow ---------------------------------------------------------------------------------------------

    def fit(self, conversations: Any, y: None = None) -> Clio:
        """Run every stage on ``conversations`` and build :attr:`release_`.

        ``conversations`` is anything :func:`clio_lite.load_conversations` reads (a path, a DataFrame, a list of
        dicts) or the :class:`Conversations` it returned.
        """
        self._check_params()
        self.timings_: dict[str, float] = {}
        self.work_: dict[str, dict] = {"reduce": {}}
        with self._stage("load"):
            convs = conversations if isinstance(conversations, Conversations) else load_conversations(conversations)
        if len(convs) == 0:
            raise ValueError(
                f"No conversation to analyse: {convs.n_read} records read from {convs.source}, all rejected. "
                "See `load_conversations(...).rejected` for the reasons."
            )
        self.conversations_ = convs
        seeds = self._seeds()

        # Work in id order, so the release does not depend on the order records arrived in (ids are unique).
        order = sorted(range(len(convs)), key=lambda i: convs[i].id)
        ordered = [convs[i] for i in order]
        texts = [conversation.user_text() for conversation in ordered]
        with self._stage("scrub"):
            scrubber = self.scrubber if self.scrubber is not None else self._default_scrubber()
            scrubbed, entity_counts = self._scrub(scrubber, texts)
        del texts  # from here on, only scrubbed text exists
        embedder = self.embedder if self.embedder is not None else self._default_embedder()
        facets = [resolve(facet) for facet in self.facets or ()]
        all_embeddings = None
        if any(getattr(facet, "embedder", False) is None for facet in facets):
            # A classifier facet reads the embeddings: computed once, by the embed stage's own path, so that the
            # clustering gets the very same vectors whether or not they came from the cache (reproducibility).
            with self._stage("embed"):
                all_embeddings = self._embed(embedder, scrubbed)
        with self._stage("facets"):
            facet_embedder = embedder if all_embeddings is None else _Precomputed(embedder, scrubbed, all_embeddings)
            facet_values = compute_facets(facets, ordered, scrubbed, facet_embedder)
            kept = np.flatnonzero(keep_mask(facet_values, self.facet_filter, len(ordered)))
        self.facet_values_ = {name: _in_input_order(values, order) for name, values in facet_values.items()}
        if len(kept) == 0:
            raise ValueError(f"facet_filter={self.facet_filter!r} left no conversation to cluster.")
        n_filtered_out = len(ordered) - len(kept)
        n_scrubbed = len(scrubbed)  # the scrub stage's output, before the filter
        if n_filtered_out:  # from here on, only the kept conversations
            ordered, scrubbed, order = [ordered[i] for i in kept], [scrubbed[i] for i in kept], [order[i] for i in kept]
            facet_values = {name: [values[i] for i in kept] for name, values in facet_values.items()}
        if all_embeddings is not None:
            embeddings = all_embeddings[kept]
        else:
            with self._stage("embed"):
                embeddings = self._embed(embedder, scrubbed)
        with self._stage("reduce"):
            reduced, positions = self._reduce(embeddings, seeds)
        with self._stage("cluster"):
            clusterer = _or_default(
                self.clusterer,
                HDBSCANClusterer,
                min_cluster_size=self.min_cluster_size or self.min_conversations,
                top_clusters=self.top_clusters,
                branching=self.branching,
                assign_outliers=self.assign_outliers,
                # Excess-of-mass leaves were tuned on all-MiniLM-L6-v2 vectors; with the fast mode's static ones
                # they grouped worse at the top (docs/quality.md), so fast mode keeps every condensed-tree leaf.
                **(_FAST_MODE_CLUSTERING if self.mode == "fast" else {}),
            )
            hierarchy = _fit_hierarchy(clusterer, reduced, embeddings, scrubbed)
            members = hierarchy.members()
        check_stage_rows(
            len(ordered), scrub=len(scrubbed), embed=len(embeddings), reduce=len(reduced), map=len(positions),
            cluster=len(hierarchy.assignment),
        )
        # What predict/transform need: the same scrubber and embedder, and each training conversation's embedding.
        self.scrubber_, self.embedder_ = scrubber, embedder
        # Input order; a conversation a facet filter kept out was never embedded for clustering (NaN row).
        self.embeddings_ = self._embeddings_in_input_order(embedder, scrubbed, embeddings, order, len(convs))
        user_codes = np.unique([c.user_id for c in ordered], return_inverse=True)[1]
        if self.privacy == "dp":
            if n_filtered_out:
                raise ValueError("facet_filter is not supported with privacy='dp' yet; filter the input instead.")
            return self._fit_dp(convs, order, ordered, scrubbed, hierarchy, members, user_codes, positions,
                                entity_counts, embedder, scrubber)
        with self._stage("gate"):
            decision = gate(hierarchy.parent, members, user_codes, self.min_users, self.min_conversations)
        with self._stage("name"):
            depth = hierarchy.depth()
            to_name = _nodes_to_name(hierarchy.parent, depth, members, decision.released)
            namer = _or_default(self.namer, KeywordNamer)
            names = namer.name(scrubbed, user_codes, to_name, self.min_users)
        nodes, node_ids = self._released_nodes(hierarchy, depth, members, decision, names, positions)
        if facets:
            with self._stage("facet breakdowns"):
                # Per remainder, so no cell can be differenced across the tree (privacy.tree_breakdowns); a
                # multi-label value is shown under its first (best) label, so a node's cells never exceed its count.
                breakdowns = {
                    facet.name: tree_breakdowns(
                        hierarchy.parent, members, decision.released,
                        [_first_label(key) for key in facet_keys(facet, facet_values[facet.name])],
                        user_codes, self.min_users,
                    )
                    for facet in facets
                }
                nodes = [
                    replace(node, facets={name: cells[index] for name, cells in breakdowns.items()})
                    for node, index in zip(nodes, np.flatnonzero(decision.released), strict=True)
                ]
        self.labels_ = np.full(len(convs), FILTERED_OUT, dtype=object)
        self.labels_[order] = self._labels(hierarchy, decision.released, node_ids, len(ordered))
        counts = self._accounting(convs, hierarchy, decision.released, members, n_filtered_out)
        by_stage = counts_by_stage(
            convs.n_read, len(convs.rejected), n_scrubbed, len(embeddings), len(reduced),
            hierarchy.assignment, self.labels_[order], UNCLUSTERED, SUPPRESSED,
            n_filtered_out=None if self.facet_filter is None else n_filtered_out,
        )
        check_counts_by_stage(by_stage, counts)
        release = Release(ClusterTree(nodes), self._manifest(counts, convs, entity_counts, embedder, scrubber))
        if hasattr(namer, "manifest_entry"):  # e.g. the LLM namer: per node, its name or the keyword name, and why
            release.manifest["naming"] = namer.manifest_entry([node.id for node in nodes])
        release.manifest["counts_by_stage"] = by_stage
        release.manifest["facets"] = {facet.name: {"kind": facet.kind} for facet in facets}
        release.manifest["privacy"] = {"mode": "k-anonymity", "unit": "user",
                                       "mechanism": "thresholds on exact counts, differencing-safe folding"}
        return self._audit_and_keep(release, convs, scrubber, entity_counts, nodes, counts)

    def _audit_and_keep(self, release, convs, scrubber, entity_counts, nodes, counts) -> Clio:
        with self._stage("audit"):
            # The release is checked against its own input before anything can save it; the manifest keeps the
            # verdict and Release.save refuses a failed one.
            # A fast mode's pattern-first scrubber is not the audit's: the audit's own (full Presidio) scan runs.
            fast_default = self.mode == "fast" and self.scrubber is None
            self.audit_ = audit(release, convs, scrubber=None if fast_default else scrubber)
        release.manifest["audit"] = self.audit_.to_dict()
        if not self.audit_.passed:
            logger.warning("the release failed its audit:\n%s", self.audit_.summary())
        self.release_ = release
        self.entity_counts_ = dict(entity_counts)
        logger.info("released %d clusters; %s", len(nodes), counts)
        return self

    def _fit_dp(self, convs, order, ordered, scrubbed, hierarchy, members, user_codes, positions, entity_counts,
                embedder, scrubber) -> Clio:
        """The DP path after clustering: bounded contributions, noisy selection and counts, DP keywords."""
        from .dp import Budget, DPKeywordNamer, bound_contributions, dp_gate

        if self.random_state is None:
            key, rng = 0, np.random.default_rng()
        else:
            key = int(check_random_state(self.random_state).randint(0, 2**31 - 1, size=3)[2])
            rng = np.random.default_rng(key)
        budget = Budget(float(self.epsilon), float(self.delta), int(self.max_conversations_per_user),
                        int(self.max_terms_per_user))
        with self._stage("gate"):
            kept = bound_contributions(user_codes, [c.id for c in ordered], budget.max_conversations_per_user, key)
            decision = dp_gate(hierarchy.parent, members, user_codes, kept, self.min_users, self.min_conversations,
                               budget, rng)
        with self._stage("name"):
            depth = hierarchy.depth()
            to_name = _nodes_to_name(hierarchy.parent, depth, members, decision.released)
            namer = self.namer if isinstance(self.namer, DPKeywordNamer) else DPKeywordNamer()
            names = namer.name(scrubbed, user_codes, to_name, self.min_users, kept=kept,
                               levels=int(depth.max()) if len(depth) else 1, budget=budget, rng=rng)
        nodes, node_ids = self._released_nodes(hierarchy, depth, members, decision, names, positions)
        self.labels_ = np.empty(len(convs), dtype=object)
        self.labels_[order] = self._labels(hierarchy, decision.released, node_ids, len(convs))
        # Only noised totals: exact dataset counts would not be differentially private.
        counts = {
            "released": int(sum(node.conversations for node in nodes if node.parent_id is None)),
            "in_released_leaves": int(sum(
                node.conversations for node in nodes if not any(other.parent_id == node.id for other in nodes)
            )),
        }
        manifest = self._manifest(counts, convs, entity_counts, embedder, scrubber)
        manifest.pop("rejected_by_field")
        manifest.pop("scrubbed_entities")
        manifest["privacy"] = budget.to_dict()
        return self._audit_and_keep(Release(ClusterTree(nodes), manifest), convs, scrubber, entity_counts, nodes,
                                    counts)

    def fit_release(self, conversations: Any) -> Release:
        """Fit and return the release."""
        return self.fit(conversations).release_

    # -- new conversations ------------------------------------------------------------------------------------

    def predict(self, conversations: Any, n_neighbors: int = 10) -> np.ndarray:
        """Assign conversations to the fitted tree: the label ``fit`` would most likely have given each.

        Each conversation is scrubbed and embedded by the same stages as in ``fit``; its label is the most common
        one (:attr:`labels_`) among its ``n_neighbors`` most similar fitted conversations (cosine, embedding
        space), ties going to the label whose neighbours are more similar. So a label is the id of a released
        cluster (the deepest one), ``"<unclustered>"`` or ``"<suppressed>"``, as in ``labels_``; each
        conversation is labelled on its own, so the result does not depend on the other conversations passed.
        The clusters and the release do not change. Labels are per conversation: private, never part of a release.

        Parameters
        ----------
        conversations : path, DataFrame, list of dicts or Conversations
            What :func:`clio_lite.load_conversations` reads; records it rejects get no label.
        n_neighbors : int
            Fitted conversations that vote.

        Returns
        -------
        np.ndarray of str
            One label per accepted conversation, in their order.

        Examples
        --------
        >>> clio = cl.Clio(min_users=25, random_state=0).fit("chats.jsonl")   # doctest: +SKIP
        >>> clio.predict("new_chats.jsonl")                                    # doctest: +SKIP
        array(['0.2', '3.1', '<unclustered>', ...], dtype=object)
        """
        embeddings = _unit(self._embed_new(conversations))
        clustered = np.flatnonzero(self.labels_ != FILTERED_OUT)  # filtered-out conversations do not vote
        fitted, fitted_labels = _unit(self.embeddings_[clustered]), self.labels_[clustered]
        k = max(1, min(n_neighbors, len(fitted)))
        labels = np.empty(len(embeddings), dtype=object)
        for start in range(0, len(embeddings), 512):  # bounded memory: 512 rows of similarities at a time
            similarity = embeddings[start : start + 512] @ fitted.T
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            for i, (row, neighbours) in enumerate(zip(similarity, nearest, strict=True)):
                votes: dict[str, list[float]] = {}
                for neighbour in neighbours:
                    votes.setdefault(fitted_labels[neighbour], []).append(float(row[neighbour]))
                labels[start + i] = max(votes, key=lambda label: (len(votes[label]), sum(votes[label]), label))
        return labels

    def transform(self, conversations: Any) -> np.ndarray:
        """Similarity of each conversation to each released leaf: a soft membership, one column per leaf.

        Columns follow ``[node.id for node in release_.tree.leaves]``; a value is the cosine between the
        conversation's embedding and the mean embedding of the fitted conversations in that leaf (its subtree).
        Conversations are scrubbed and embedded as in ``fit``.

        Examples
        --------
        >>> scores = clio.transform("new_chats.jsonl")                          # doctest: +SKIP
        >>> leaf_ids = [node.id for node in clio.release_.tree.leaves]          # doctest: +SKIP
        """
        embeddings = self._embed_new(conversations)
        centroids = []
        for leaf in self.release_.tree.leaves:
            inside = np.array([label == leaf.id or str(label).startswith(leaf.id + ".") for label in self.labels_])
            centroid = self.embeddings_[inside].mean(axis=0)
            centroids.append(centroid / max(float(np.linalg.norm(centroid)), 1e-12))
        width = len(centroids)
        if not width:
            return np.zeros((len(embeddings), 0))
        return _unit(embeddings) @ np.stack(centroids).T

    def _embed_new(self, conversations: Any) -> np.ndarray:
        if not hasattr(self, "embeddings_"):
            raise RuntimeError("This Clio is not fitted yet: call fit(conversations) before predict or transform.")
        convs = conversations if isinstance(conversations, Conversations) else load_conversations(conversations)
        if len(convs) == 0:
            return np.zeros((0, self.embeddings_.shape[1]))
        # The same path as fit (caches, chunks, executor), without touching fit's work_ counters.
        texts = [conversation.user_text() for conversation in convs]
        scrubbed, _, _ = scrub_texts(
            self.scrubber_, texts, self._result_cache("scrub", self.scrubber_), self.executor, verbose=self.verbose
        )
        embeddings, _ = embed_texts(
            self.embedder_, scrubbed, self._result_cache("embed", self.embedder_), self.executor, verbose=self.verbose
        )
        return np.asarray(embeddings, dtype=np.float64)

    # -- stages -----------------------------------------------------------------------------------------------

    def _scrub(self, scrubber: Any, texts: list[str]) -> tuple[list[str], Counter]:
        # Distinct texts once, cached ones never again, in chunks committed as they finish (see executor.py).
        cache = self._result_cache("scrub", scrubber)
        scrubbed, entity_counts, self.work_["scrub"] = scrub_texts(
            scrubber, texts, cache, self.executor, verbose=self.verbose
        )
        return scrubbed, entity_counts

    def _embed(self, embedder: Any, scrubbed: list[str]) -> np.ndarray:
        cache = self._result_cache("embed", embedder)
        # With a cache, the vectors are written straight into a memory-mapped .npy under its checkpoints and read
        # back from it: on disk, paged in as needed, never all in RAM.
        writer = self._embeddings_writer(embedder, scrubbed, "embeddings")
        try:
            embeddings, self.work_["embed"] = embed_texts(
                embedder, scrubbed, cache, self.executor, verbose=self.verbose,
                allocate=None if writer is None else writer.allocate,
            )
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        return embeddings if writer is None else writer.commit()

    def _embeddings_writer(self, embedder: Any, texts: Sequence[str], name: str, *parts: str) -> MemmapWriter | None:
        """Where the embeddings of ``texts`` go on disk (keyed by the embedder and the texts), or None without cache."""
        root = self._cache_root()
        if root is None:
            return None
        digest = hashlib.sha256()
        for text in texts:
            encoded = text.encode()
            digest.update(len(encoded).to_bytes(8, "little"))
            digest.update(encoded)
        key = ArrayCheckpoints.key(fingerprint(embedder), digest.hexdigest(), *parts)
        return ArrayCheckpoints(root / "checkpoints").writer("embed", key, name)

    def _embeddings_in_input_order(
        self, embedder: Any, scrubbed: list[str], embeddings: np.ndarray, order: list[int], n: int
    ) -> np.ndarray:
        """``embeddings_``: each row at its conversation's input position, NaN for one a facet filter kept out;
        memory-mapped on disk like the embed stage's output when there is a cache."""
        writer = self._embeddings_writer(embedder, scrubbed, "embeddings_", hash_array(np.asarray(order)), str(n))
        out = np.empty((n, embeddings.shape[1]), embeddings.dtype) if writer is None else writer.allocate(
            (n, embeddings.shape[1]), embeddings.dtype
        )
        if len(order) < n:
            out[:] = np.nan
        for start in range(0, len(order), 50_000):  # bounded: a block of rows in memory at a time
            out[order[start : start + 50_000]] = embeddings[start : start + 50_000]
        return out if writer is None else writer.commit()

    def _reduce(self, embeddings: np.ndarray, seeds: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
        """The clustering space and the map, each checkpointed under (its input, its reducer's config, fit limit).

        The default map (:class:`SampledMap`: UMAP of a sample of the embeddings, the rest placed by their neighbours
        in the clustering space) is fitted beside the clustering space (:meth:`_reduce_with_sampled_map`); a
        ``map_reducer`` of one's own reduces the embeddings after it, keyed like the clustering space.
        """
        root = self._cache_root()
        store = ArrayCheckpoints(root / "checkpoints") if root is not None else None
        input_hash = hash_array(embeddings) if store is not None else ""
        reducer = _seeded(_or_default(self.reducer, UMAPReducer, n_components=5), seeds[0])
        with tqdm(total=2, desc="Reducing (UMAP)", disable=not self.verbose) as progress:
            if self.map_reducer is None:
                return self._reduce_with_sampled_map(reducer, embeddings, input_hash, store, seeds, progress.update)
            reduced = self._reduce_one("reduced", reducer, embeddings, input_hash, store, self.umap_fit_limit, seeds[0])
            progress.update()
            map_reducer = _seeded(self.map_reducer, seeds[1])
            positions = self._reduce_one(
                "positions", map_reducer, embeddings, input_hash, store, self.umap_fit_limit, seeds[1]
            )
            progress.update()
        return reduced, positions

    def _reduce_with_sampled_map(self, reducer: Any, embeddings: np.ndarray, input_hash: str,
                                 store: ArrayCheckpoints | None, seeds: list[int | None],
                                 done: Any) -> tuple[np.ndarray, np.ndarray]:
        """The clustering space and the default map, the map's UMAP fitted in a worker process meanwhile when it pays.

        The map's UMAP (of its sample, or of every point up to ``map_fit_limit``) reads the embeddings only; only
        the placing of the points outside its sample (cheap) needs the clustering space. So the two UMAPs, each
        single-threaded with a seed, run side by side (:func:`clio_lite.reduce.fit_sample_beside`; the executor's
        ``processes``, ``"auto"`` for Ray, says whether), and give the bytes they give one after the other.
        Checkpoints: the map's UMAP under (embeddings, ``SampledMap`` config) as soon as it is done, as
        ``positions`` when it is the whole map, else as ``map_sample``, the placed map then under (embeddings, the
        5-D points, config). So a run killed after one UMAP and before the other computes only the other.
        """
        work = self.work_["reduce"]
        sampled_map = SampledMap(fit_limit=self.map_fit_limit, random_state=seeds[1])
        sample = sampled_map.sample(len(embeddings))
        map_key = store.key(input_hash, fingerprint(sampled_map)) if store is not None else ""
        fitted_name = "positions" if sample is None else "map_sample"

        def load(key: str, name: str) -> np.ndarray | None:
            return store.load("reduce", key, name) if store is not None else None

        def placed_key(reduced: np.ndarray) -> str:
            return store.key(input_hash, hash_array(reduced), fingerprint(sampled_map)) if store is not None else ""

        # Read here to know what is left to do; computed (and saved) below only if it is not there.
        reduced = load(store.key(input_hash, fingerprint(reducer, fit_limit=self.umap_fit_limit)) if store else "",
                       "reduced")
        fitted = load(map_key, fitted_name)
        positions = fitted if sample is None else None
        if sample is not None and reduced is not None:
            positions = load(placed_key(reduced), "positions")
        if sample is not None and positions is None:
            work["map_sample"] = "checkpoint" if fitted is not None else "computed"

        job = None
        if positions is None and fitted is None:
            rows = embeddings if sample is None else np.asarray(embeddings[sample], dtype=np.float32)
            keep = (lambda value: store.save("reduce", map_key, fitted_name, value)) if store is not None else None
            # With the clustering space read back there is nothing to fit beside: the map is fitted here.
            processes = getattr(make_executor(self.executor), "processes", "auto") if reduced is None else 1
            job = fit_sample_beside(sampled_map, rows, processes=processes, on_result=keep)
        with job if job is not None else nullcontext():
            if reduced is None:
                with one_blas_thread(job is not None and job.in_worker):  # one core each: no spinning BLAS threads
                    reduced = self._reduce_one(
                        "reduced", reducer, embeddings, input_hash, store, self.umap_fit_limit, seeds[0]
                    )
            else:
                work["reduced"] = "checkpoint"
            done()
            if job is not None:
                work["map_fit"] = "worker process" if job.in_worker else "this process"
                fitted = job.result()
        if positions is None and sample is not None:
            positions = load(placed_key(reduced), "positions")
        work["positions"] = "checkpoint" if positions is not None else "computed"
        if positions is None:
            positions = sampled_map.place(np.asarray(fitted), reduced, sample)
            if store is not None and sample is not None:  # the whole map is saved already, as soon as it was done
                store.save("reduce", placed_key(reduced), "positions", positions)
        done()
        return reduced, np.asarray(positions)

    def _reduce_one(self, name: str, reducer: Any, X: np.ndarray, input_hash: str, store: ArrayCheckpoints | None,
                    fit_limit: int | None, seed: int | None) -> np.ndarray:
        """One reducer's output: read from its checkpoint, or computed (on a sample above ``fit_limit``) and saved."""
        key = store.key(input_hash, fingerprint(reducer, fit_limit=fit_limit)) if store else ""
        output = store.load("reduce", key, name) if store is not None else None
        self.work_["reduce"][name] = "checkpoint" if output is not None else "computed"
        if output is None:
            output = fit_transform_sampled(reducer, X, fit_limit, seed)
            if store is not None:
                store.save("reduce", key, name, output)
        return np.asarray(output)

    def _cache_root(self) -> Path | None:
        if self.cache_dir is False:
            return None
        return default_cache_dir() if self.cache_dir is None or self.cache_dir is True else Path(self.cache_dir)

    def _result_cache(self, stage: str, stage_object: Any) -> ResultCache | None:
        root = self._cache_root()
        return None if root is None else ResultCache(root / "results.sqlite", stage, fingerprint(stage_object))

    def _default_embedder(self) -> SentenceTransformerEmbedder | StaticEmbedder:
        if self.cache_dir is False:
            cache = None
        elif self.cache_dir is None or self.cache_dir is True:
            cache = default_cache_dir()
        else:
            cache = Path(self.cache_dir)
        if self.mode == "fast":
            # The distilled model holds no conversation data: it is kept (and reused) even with cache_dir=False.
            return StaticEmbedder(models_dir=None if cache is None else cache / "models")
        return SentenceTransformerEmbedder(cache_dir=cache, verbose=self.verbose)

    def _default_scrubber(self) -> Any:
        return PatternScrubber() if self.mode == "fast" else PresidioScrubber()

    def _released_nodes(
        self, hierarchy: Hierarchy, depth: np.ndarray, members: list[np.ndarray], decision, names, positions
    ) -> tuple[list[ClusterNode], dict[int, str]]:
        """Released nodes with path ids assigned among released siblings only, so ids leak no suppressed node."""
        node_ids: dict[int, str] = {}
        released = np.flatnonzero(decision.released)
        name_of = dict(zip(released, names, strict=True))
        sibling_count: Counter = Counter()
        total_released = sum(decision.conversations[n] for n in released if hierarchy.parent[n] < 0)
        nodes: list[ClusterNode] = []
        for node in released:  # parents precede children; siblings are ordered by size
            parent = int(hierarchy.parent[node])
            parent_id = node_ids.get(parent) if parent >= 0 else None
            index = sibling_count[parent_id]
            sibling_count[parent_id] += 1
            node_ids[node] = str(index) if parent_id is None else f"{parent_id}.{index}"
            denominator = decision.conversations[parent] if parent >= 0 else total_released
            centre = positions[members[node]].mean(axis=0)
            nodes.append(
                ClusterNode(
                    id=node_ids[node],
                    parent_id=parent_id,
                    depth=int(depth[node]),
                    name=name_of[node].name,
                    description=name_of[node].description,
                    keywords=tuple(name_of[node].keywords),
                    conversations=int(decision.conversations[node]),
                    users=int(decision.users[node]),
                    share_of_parent=round(float(decision.conversations[node] / denominator), 4),
                    x=round(float(centre[0]), 3),
                    y=round(float(centre[1]), 3),
                )
            )
        return nodes, node_ids

    @staticmethod
    def _labels(hierarchy: Hierarchy, released: np.ndarray, node_ids: dict[int, str], n: int) -> np.ndarray:
        # Each node's label is its own id if released, else its nearest released ancestor's; parents come first.
        node_label = np.empty(hierarchy.n_nodes, dtype=object)
        for node, parent in enumerate(hierarchy.parent):
            if released[node]:
                node_label[node] = node_ids[node]
            else:
                node_label[node] = node_label[parent] if parent >= 0 else SUPPRESSED
        labels = np.full(n, UNCLUSTERED, dtype=object)
        clustered = hierarchy.assignment >= 0
        labels[clustered] = node_label[hierarchy.assignment[clustered]]
        return labels

    @staticmethod
    def _accounting(
        convs: Conversations, hierarchy: Hierarchy, released: np.ndarray, members, filtered_out: int = 0
    ) -> dict[str, int]:
        top_released = [n for n in np.flatnonzero(released) if hierarchy.parent[n] < 0]
        in_released = sum(len(members[n]) for n in top_released)
        children = hierarchy.children()
        leaves = [n for n in np.flatnonzero(released) if not any(released[c] for c in children[n])]
        unclustered = int((hierarchy.assignment < 0).sum())
        counts = {
            "read": convs.n_read,
            "rejected": len(convs.rejected),
            "accepted": len(convs),
            "released": int(in_released),
            "in_released_leaves": int(sum(len(members[n]) for n in leaves)),
            "suppressed": int(len(convs) - filtered_out - in_released - unclustered),
            "unclustered": unclustered,
            "filtered_out": int(filtered_out),
            "reassigned": int(getattr(hierarchy, "reassigned", 0)),
        }
        buckets = ("released", "suppressed", "unclustered", "rejected", "filtered_out")
        if counts["read"] != sum(counts[bucket] for bucket in buckets):
            raise RuntimeError(f"accounting does not add up, a bug in clio_lite: {counts}")
        return counts

    def _manifest(self, counts, convs: Conversations, entity_counts: Counter, embedder, scrubber) -> dict[str, Any]:
        config = self._config()
        # Positions are dropped ("messages[3].role" counts as "messages[].role"): the totals are what matter.
        rejected_by_field = Counter(
            re.sub(r"\[\d+\]", "[]", rejection.field or "record") for rejection in convs.rejected
        )
        return {
            "schema_version": SCHEMA_VERSION,
            "config": config,
            "config_hash": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
            "versions": package_versions(_VERSIONED_PACKAGES),
            "models": {
                "embedding": getattr(embedder, "model_id", type(embedder).__name__),
                "embedding_sha256": getattr(embedder, "fingerprint", None),
                "scrubber": getattr(scrubber, "model_name", type(scrubber).__name__),
            },
            "thresholds": {"min_users": self.min_users, "min_conversations": self.min_conversations},
            "counts": counts,
            "rejected_by_field": dict(sorted(rejected_by_field.items())),
            "rejected_by_code": dict(sorted(Counter(rejection.code for rejection in convs.rejected).items())),
            "scrubbed_entities": dict(sorted(entity_counts.items())),
        }

    # -- helpers ----------------------------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        """The parameters as JSON-safe values; a stage object is recorded by its class and its own parameters."""

        def describe(value: Any) -> Any:
            if value is None or isinstance(value, bool | int | float | str):
                return value
            if isinstance(value, np.integer | np.floating):
                return value.item()
            if isinstance(value, Path):
                return str(value)
            if callable(value) and hasattr(value, "__qualname__") and not isinstance(value, type):
                return f"{value.__module__}.{value.__qualname__}"  # a function, e.g. a facet_filter
            if isinstance(value, list | tuple):
                return [describe(item) for item in value]
            if isinstance(value, dict):
                return {str(key): describe(item) for key, item in sorted(value.items(), key=lambda kv: str(kv[0]))}
            if isinstance(value, np.random.RandomState | np.random.Generator) or not hasattr(value, "__dict__"):
                return type(value).__name__
            params = {
                key: describe(item)
                for key, item in sorted(vars(value).items())
                if not key.startswith("_") and not key.endswith("_")
            }
            return {"class": f"{type(value).__module__}.{type(value).__qualname__}", "params": params}

        params = self.get_params(deep=False)
        params.pop("verbose")
        params.pop("cache_dir")  # where the cache lives does not change the release
        params.pop("executor")  # nor where the model stages run
        return {key: describe(value) for key, value in sorted(params.items())}

    def _check_params(self) -> None:
        for name in ("min_users", "min_conversations", "top_clusters", "branching"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"Clio({name}={value!r}): expected a positive integer.")
        if self.mode not in ("default", "fast"):
            raise ValueError(f"Clio(mode={self.mode!r}): expected 'default' or 'fast'.")
        if self.mode == "fast" and self.embedder is None:
            model2vec_version()  # a missing extra is found now, not after the scrubbing
        if self.privacy not in ("k-anonymity", "dp"):
            raise ValueError(f"Clio(privacy={self.privacy!r}): expected 'k-anonymity' or 'dp'.")
        if self.privacy == "dp":
            if not (isinstance(self.epsilon, int | float) and self.epsilon > 0):
                raise ValueError(f"Clio(epsilon={self.epsilon!r}): expected a positive number.")
            if not (isinstance(self.delta, float) and 0 < self.delta < 1):
                raise ValueError(f"Clio(delta={self.delta!r}): expected a float in (0, 1).")
            if self.namer is not None and type(self.namer).__name__ != "DPKeywordNamer":
                raise ValueError(
                    f"Clio(privacy='dp', namer={type(self.namer).__name__}): a DP release is named from its DP "
                    "keywords only; leave namer=None (or pass a clio_lite.dp.DPKeywordNamer)."
                )
            for name in ("max_conversations_per_user", "max_terms_per_user"):
                if not isinstance(getattr(self, name), int | np.integer) or getattr(self, name) < 1:
                    raise ValueError(f"Clio({name}={getattr(self, name)!r}): expected a positive integer.")
        make_executor(self.executor)  # an unknown executor fails here, before any work
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise ValueError(f"Clio(min_cluster_size={self.min_cluster_size!r}): expected an integer >= 2 or None.")

    def _seeds(self) -> list[int | None]:
        if self.random_state is None:
            return [None, None]
        rng = check_random_state(self.random_state)
        return [int(seed) for seed in rng.randint(0, 2**31 - 1, size=2)]

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings_[name] = round(time.perf_counter() - start, 3)
        if self.verbose:
            logger.info("%s: %.1f s", name, self.timings_[name])


class _Precomputed:
    """The pipeline's embedder, answering with the embed stage's vectors for the texts it already embedded."""

    def __init__(self, embedder: Any, texts: Sequence[str], vectors: np.ndarray):
        self.embedder = embedder
        self.model_id = getattr(embedder, "model_id", type(embedder).__name__)
        self.known = dict(zip(texts, vectors, strict=True))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        missing = list(dict.fromkeys(text for text in texts if text not in self.known))
        if missing:  # e.g. a classifier's label descriptions
            self.known.update(zip(missing, self.embedder.embed(missing), strict=True))
        if not texts:
            return self.embedder.embed([])
        return np.stack([self.known[text] for text in texts])


def _first_label(value: Any) -> Any:
    """A multi-label value's first (best) label; any other value unchanged."""
    if isinstance(value, tuple | list):
        return value[0] if value else None
    return value


def _in_input_order(values: Sequence[Any], order: Sequence[int]) -> np.ndarray:
    """Values listed in id order, put back in the caller's order."""
    result = np.empty(len(values), dtype=object)
    for position, value in zip(order, values, strict=True):
        result[position] = value
    return result


def _nodes_to_name(parent: np.ndarray, depth: np.ndarray, members: list, released: np.ndarray) -> list[NodeToName]:
    """The released nodes as the namer sees them: members, the parent's position among them, depth."""
    kept = np.flatnonzero(released)
    position_of = {node: i for i, node in enumerate(kept)}
    return [NodeToName(members[node], position_of.get(parent[node], -1), int(depth[node])) for node in kept]


#: The clusterer's settings in fast mode: the earlier "leaf" selection (see the comment where it is used).
_FAST_MODE_CLUSTERING = {"cluster_selection_method": "leaf", "cluster_selection_epsilon": 0.0}


def _or_default(stage: Any, default: type, **params: Any) -> Any:
    """The user's stage, or a new default one. (Not ``stage or default``: a stage may define ``__len__``.)"""
    return default(**params) if stage is None else stage


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _fit_hierarchy(clusterer: Any, reduced: np.ndarray, embeddings: np.ndarray, scrubbed: list[str]) -> Hierarchy:
    """The clusterer's hierarchy; the scrubbed texts are passed to a clusterer that accepts ``texts``."""
    import inspect

    if "texts" in inspect.signature(clusterer.fit_hierarchy).parameters:
        return clusterer.fit_hierarchy(reduced, embeddings, texts=scrubbed)
    return clusterer.fit_hierarchy(reduced, embeddings)


def _seeded(stage: Any, seed: int | None) -> Any:
    """A copy of ``stage`` with ``random_state`` set, unless the user fixed its own."""
    if seed is None or getattr(stage, "random_state", 0) is not None:
        return stage
    stage = copy.copy(stage)
    stage.random_state = seed
    return stage


def fit_transform_sampled(
    reducer: Any, X: np.ndarray, limit: int | None, seed: int | None, processes: int | str = "auto"
) -> np.ndarray:
    """``reducer.fit_transform(X)``, but above ``limit`` rows fitted on a seeded sample and applied to the rest.

    UMAP's fit grows faster than linearly in time and memory; its ``transform`` places new points in a fitted
    embedding at a fraction of the cost. The rest is placed in blocks of ``limit`` rows, in worker processes on
    idle cores too when there are several (:func:`clio_lite.reduce.transform_blocks`; the same bytes either way).
    A reducer with neither ``transform`` nor a fitted ``model_`` that has one is fitted on everything.
    """
    n = len(X)
    if limit is None or n <= limit:
        return reducer.fit_transform(X)
    rng = np.random.default_rng(seed if seed is not None else 0)
    sample = np.zeros(n, dtype=bool)
    sample[rng.choice(n, size=limit, replace=False)] = True
    if hasattr(reducer, "for_transform"):  # a fit that keeps what its transform needs (UMAPReducer's search index)
        reducer = reducer.for_transform()
    fitted = np.asarray(reducer.fit_transform(X[sample]))
    transform = getattr(reducer, "transform", None) or getattr(getattr(reducer, "model_", None), "transform", None)
    if transform is None:
        logger.info("%s has no transform: fitting it on all %d rows", type(reducer).__name__, n)
        return reducer.fit_transform(X)
    out = np.empty((n, fitted.shape[1]), dtype=fitted.dtype)
    out[sample] = fitted
    rest = np.flatnonzero(~sample)
    blocks = [rest[start : start + limit] for start in range(0, len(rest), limit)]  # bounded memory per block
    for part, placed in zip(blocks, transform_blocks(reducer, X, blocks, processes), strict=True):
        out[part] = placed.astype(fitted.dtype, copy=False)
    return out
