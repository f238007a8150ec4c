"""The release: the only thing that leaves the private zone.

A :class:`Release` is a tree of released clusters (name, description, keywords, counts of conversations and
distinct users, a 2-D position) plus a manifest (configuration, its hash, package versions, the accounting of
every input record). It holds no conversation text, no conversation or user id and nothing per conversation.

This module imports nothing from the private stages of the pipeline, so it cannot reach raw text even by mistake.
Saving writes a plain, versioned directory (``tree.json``, ``nodes.parquet``, ``manifest.json``), never a pickle.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .release_files import (
    MAX_FILE_BYTES,
    ReleaseFormatError,
    check_manifest,
    check_release_dir,
    flatten_nodes,
    read_json,
    write_release_dir,
)

if TYPE_CHECKING:
    import networkx as nx
    import plotly.graph_objects as go

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
#: Schema versions ``Release.load`` reads; older ones are migrated to :data:`SCHEMA_VERSION` on load.
READABLE_SCHEMA_VERSIONS = (1, 2)
RELEASE_FILES = ("tree.json", "nodes.parquet", "manifest.json")
NODE_COLUMNS = (
    "id", "parent_id", "depth", "name", "description", "keywords", "conversations", "users", "share_of_parent",
    "x", "y",
)


@dataclass(frozen=True)
class ClusterNode:
    """One released cluster.

    Attributes
    ----------
    id : str
        A path id: ``"2"`` is the third-largest top-level cluster, ``"2.0"`` its largest released child.
    parent_id : str or None
        ``None`` at the top level.
    depth : int
        1 at the top level.
    conversations, users : int
        Conversations in the cluster's whole subtree, and the distinct users who had them.
    share_of_parent : float
        ``conversations`` over the parent's (over all released conversations at the top level).
    x, y : float
        The cluster's centre on the 2-D map.
    facets : dict of str to dict of str to int
        Per-facet breakdowns of the cluster's conversations: ``{"language": {"en": 120, "other": 30}}``. Only
        k-supported cells are released (see :func:`clio_lite.privacy.breakdown`); empty when no facet was computed.
    """

    id: str
    parent_id: str | None
    depth: int
    name: str
    description: str
    keywords: tuple[str, ...]
    conversations: int
    users: int
    share_of_parent: float
    x: float
    y: float
    facets: dict[str, dict[str, int]] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["keywords"] = list(self.keywords)
        return row


class ClusterTree:
    """The released clusters as a tree: navigate it, print it, or turn it into a table.

    Examples
    --------
    >>> tree = ClusterTree([ClusterNode("0", None, 1, "Python · Pandas", "Conversations about python.",
    ...                                 ("python",), 120, 40, 1.0, 0.0, 0.0)])
    >>> [node.name for node in tree.roots]
    ['Python · Pandas']
    """

    def __init__(self, nodes: list[ClusterNode]):
        self._by_id = {node.id: node for node in nodes}
        self._children: dict[str | None, list[ClusterNode]] = {}
        for node in nodes:
            self._children.setdefault(node.parent_id, []).append(node)
        #: All nodes in walk order (parents before children, siblings in the order given).
        self.nodes = list(self.walk())

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[ClusterNode]:
        return iter(self.nodes)

    def __getitem__(self, node_id: str) -> ClusterNode:
        return self._by_id[node_id]

    @property
    def roots(self) -> list[ClusterNode]:
        """The top-level clusters, largest first."""
        return list(self._children.get(None, []))

    @property
    def depth(self) -> int:
        """The number of levels."""
        return max((node.depth for node in self.nodes), default=0)

    def children(self, node_id: str) -> list[ClusterNode]:
        """A node's released children, largest first."""
        return list(self._children.get(node_id, []))

    def walk(self, node_id: str | None = None) -> Iterator[ClusterNode]:
        """Depth-first, parents before children, siblings largest first; from ``node_id`` or from the top."""
        stack = list(reversed(self.roots if node_id is None else [self[node_id]]))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(self.children(node.id)))

    def to_pandas(self) -> pd.DataFrame:
        """One row per released node, in walk order, with its parent id and depth."""
        return pd.DataFrame([node.to_dict() for node in self.walk()], columns=list(NODE_COLUMNS))

    @property
    def leaves(self) -> list[ClusterNode]:
        """The nodes with no released children, in walk order.

        Examples
        --------
        >>> [node.id for node in tree.leaves]  # doctest: +SKIP
        ['0.0.0', '0.1', '1.0']
        """
        return [node for node in self.nodes if node.id not in self._children]

    def find(self, text: str) -> list[ClusterNode]:
        """The nodes whose name, description or a keyword contains ``text``, ignoring case, in walk order.

        Parameters
        ----------
        text : str
            The text to look for; an empty string matches every node.

        Returns
        -------
        list of ClusterNode

        Examples
        --------
        >>> [node.name for node in tree.find("pandas")]  # doctest: +SKIP
        ['Python · Pandas']
        """
        needle = text.casefold()
        return [
            node for node in self.nodes
            if needle in node.name.casefold()
            or needle in node.description.casefold()
            or any(needle in keyword.casefold() for keyword in node.keywords)
        ]

    def subtree(self, node_id: str) -> ClusterTree:
        """The tree below ``node_id``, with that node as its single root.

        Ids, names, descriptions, keywords, counts, ``share_of_parent`` and positions are unchanged, so ``tree[id]``
        and ``tree.subtree(...)[id]`` describe the same cluster. The new root's ``parent_id`` becomes ``None`` and
        depths are re-based so that the root is at depth 1, as in any tree: :attr:`depth` counts the subtree's levels
        and ``show(max_depth=...)`` counts from the new root. The original depth of a node is
        ``node.id.count(".") + 1``.

        Parameters
        ----------
        node_id : str
            The id of the node to start from; a ``KeyError`` names it if there is no such node.

        Returns
        -------
        ClusterTree

        Examples
        --------
        >>> tree.subtree("0").roots[0].depth  # doctest: +SKIP
        1
        """
        if node_id not in self._by_id:
            raise KeyError(f"No released cluster has the id {node_id!r}; ids look like {self._example_ids()}.")
        top = self._by_id[node_id]
        shift = top.depth - 1
        return ClusterTree([
            replace(node, depth=node.depth - shift, parent_id=None if node is top else node.parent_id)
            for node in self.walk(node_id)
        ])

    def to_networkx(self) -> nx.DiGraph:
        """The tree as a ``networkx.DiGraph`` with an edge from each parent to each child.

        Each graph node is a cluster id; its attributes are the other :class:`ClusterNode` fields (``depth``,
        ``name``, ``description``, ``keywords`` as a list, ``conversations``, ``users``, ``share_of_parent``,
        ``x``, ``y``). Needs ``networkx`` (``pip install clio_lite[viz]``).

        Returns
        -------
        networkx.DiGraph

        Examples
        --------
        >>> sorted(tree.to_networkx().successors("0"))  # doctest: +SKIP
        ['0.0', '0.1']
        """
        try:
            import networkx
        except ImportError as error:
            raise ImportError(
                "ClusterTree.to_networkx needs networkx: pip install clio_lite[viz] (or pip install networkx)."
            ) from error
        graph = networkx.DiGraph()
        for node in self.nodes:
            attributes = node.to_dict()
            del attributes["id"], attributes["parent_id"]
            graph.add_node(node.id, **attributes)
            if node.parent_id is not None:
                graph.add_edge(node.parent_id, node.id)
        return graph

    def plot_icicle(
        self, max_depth: int | str | None = "auto", color: str | Mapping[str, float] | None = None
    ) -> go.Figure:
        """An icicle plot of the tree; see :func:`clio_lite.viz.plot_icicle`.

        Examples
        --------
        >>> tree.plot_icicle(max_depth=2).show()  # doctest: +SKIP
        """
        from .viz import plot_icicle

        return plot_icicle(self, max_depth=max_depth, color=color)

    def plot_sunburst(
        self, max_depth: int | str | None = "auto", color: str | Mapping[str, float] | None = None
    ) -> go.Figure:
        """A sunburst plot of the tree; see :func:`clio_lite.viz.plot_sunburst`.

        Examples
        --------
        >>> tree.plot_sunburst(max_depth=2).show()  # doctest: +SKIP
        """
        from .viz import plot_sunburst

        return plot_sunburst(self, max_depth=max_depth, color=color)

    def plot_treemap(
        self, max_depth: int | str | None = "auto", color: str | Mapping[str, float] | None = None
    ) -> go.Figure:
        """A treemap of the tree; see :func:`clio_lite.viz.plot_treemap`.

        Examples
        --------
        >>> tree.plot_treemap(max_depth=2).show()  # doctest: +SKIP
        """
        from .viz import plot_treemap

        return plot_treemap(self, max_depth=max_depth, color=color)

    def plot_map(
        self,
        color: str | Mapping[str, float] | None = "depth",
        size: str | None = "users",
        max_depth: int | str | None = "auto",
    ) -> go.Figure:
        """The clusters on the 2-D map, sized by users; see :func:`clio_lite.viz.plot_map`.

        Examples
        --------
        >>> tree.plot_map(color="share", max_depth=2).show()  # doctest: +SKIP
        """
        from .viz import plot_map

        return plot_map(self, color=color, size=size, max_depth=max_depth)

    def to_html(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """Write a self-contained HTML report of the tree (no counts or audit: see :meth:`Release.to_html`).

        Examples
        --------
        >>> tree.to_html("tree.html")  # doctest: +SKIP
        PosixPath('tree.html')
        """
        from .viz.report import write_html

        return write_html(self, path, title=title)

    def _example_ids(self) -> str:
        return ", ".join(repr(node.id) for node in self.nodes[:3]) or "none (the tree is empty)"

    def digest(self) -> str:
        """sha256 of the tree's canonical JSON: what an audit vouches for."""
        return hashlib.sha256(_dumps(self.to_dict()).encode("utf-8")).hexdigest()

    def to_dict(self) -> list[dict[str, Any]]:
        """The tree as nested dicts: each node with a ``children`` list."""

        def nest(node: ClusterNode) -> dict[str, Any]:
            return {**node.to_dict(), "children": [nest(child) for child in self.children(node.id)]}

        return [nest(root) for root in self.roots]

    def render(self, max_depth: int | None = None):
        """A ``rich`` renderable of the tree down to ``max_depth`` levels."""
        from rich.tree import Tree

        top = Tree(f"[bold]{len(self.roots)} top-level clusters[/bold]")

        def add(branch, node: ClusterNode) -> None:
            label = (
                f"[bold]{node.name}[/bold]  [dim]{node.conversations:,} conversations · {node.users:,} users · "
                f"{node.share_of_parent:.0%}[/dim]"
            )
            sub = branch.add(label)
            if max_depth is None or node.depth < max_depth:
                for child in self.children(node.id):
                    add(sub, child)

        for root in self.roots:
            add(top, root)
        return top

    def show(self, max_depth: int | None = None, widget: bool | None = None) -> None:
        """Show the tree: the interactive explorer in a notebook, a printed tree elsewhere.

        In Jupyter, JupyterLab or VS Code (an IPython kernel) with anywidget installed, this displays a
        :class:`~clio_lite.viz.widget.ClusterExplorer`: the collapsible tree, a search box, a details panel with
        keywords and facet breakdowns, and the 2-D map. In a terminal, or with ``widget=False``, it prints the tree
        with rich.

        Parameters
        ----------
        max_depth : int, optional
            Printed: the levels to print (all by default). In the explorer: the levels shown open (the top level
            only by default).
        widget : bool, optional
            ``None`` chooses as above; ``True`` always displays the explorer (anywidget must be installed);
            ``False`` always prints.

        Examples
        --------
        >>> tree.show(max_depth=2)  # doctest: +SKIP
        """
        if widget or (widget is None and _in_notebook() and _has_anywidget()):
            from IPython.display import display

            display(self.explore(open_depth=max_depth or 1))
            return
        from rich.console import Console

        Console().print(self.render(max_depth))

    def explore(self, open_depth: int = 1, height: int = 520) -> Any:
        """The interactive notebook explorer of this tree, to display or script; see :meth:`show`.

        Parameters
        ----------
        open_depth : int
            Levels shown when it opens (1: the top-level clusters).
        height : int
            The tree panel's maximum height, in pixels.

        Returns
        -------
        clio_lite.viz.widget.ClusterExplorer
            Its ``selected``, ``search`` and ``color_by`` follow the clicks in the notebook, and setting them moves
            the view.

        Examples
        --------
        >>> explorer = tree.explore()                  # doctest: +SKIP
        >>> explorer.search = "pandas"                 # doctest: +SKIP
        """
        from .viz.widget import ClusterExplorer

        return ClusterExplorer(self, open_depth=open_depth, height=height)

    def plot_facets(self, node_id: str, facet: str, compare: bool = True) -> go.Figure:
        """A bar chart of one cluster's breakdown by a facet; see :func:`clio_lite.viz.plot_facets`.

        Examples
        --------
        >>> tree.plot_facets("0", "language").show()  # doctest: +SKIP
        """
        from .viz import plot_facets

        return plot_facets(self, node_id, facet, compare=compare)

    def __repr__(self) -> str:
        return f"ClusterTree({len(self)} nodes, {self.depth} levels)"


class Release:
    """A released cluster tree and its manifest.

    Attributes
    ----------
    tree : ClusterTree
        The released clusters.
    manifest : dict
        Configuration, its hash, package and model versions, and the accounting of every input record.
    """

    def __init__(self, tree: ClusterTree, manifest: dict[str, Any]):
        self.tree = tree
        self.manifest = manifest

    @property
    def counts(self) -> dict[str, int]:
        """How many records were read, rejected, released, suppressed and left unclustered."""
        return dict(self.manifest["counts"])

    def to_pandas(self) -> pd.DataFrame:
        """One row per released node; see :meth:`ClusterTree.to_pandas`."""
        return self.tree.to_pandas()

    def to_json(self) -> str:
        """The tree and the manifest as one JSON document."""
        return _dumps({"schema_version": SCHEMA_VERSION, "manifest": self.manifest, "tree": self.tree.to_dict()})

    def save(self, path: str | os.PathLike, overwrite: bool = False, allow_failed_audit: bool = False) -> Path:
        """Write ``tree.json``, ``nodes.parquet`` and ``manifest.json`` to the directory ``path``.

        A release whose manifest records a failed audit (see :func:`clio_lite.audit`) is refused unless
        ``allow_failed_audit=True``; the manifest then still says it failed.

        The files are written to a temporary directory beside ``path``, flushed to disk and moved into place at the
        end, so an interrupted or failed save never leaves a half-written release. An existing release directory is
        replaced only with ``overwrite=True``; a directory holding anything else is never touched.

        Raises
        ------
        OSError
            If the directory cannot be written (a full disk, no permission, a read-only file system): the message
            names ``path``, what was being written and what to do; ``errno`` is the system's. Nothing at ``path``
            has changed.
        """
        audit = self.manifest.get("audit")
        if audit is None:
            logger.warning("saving a release that was never audited; run clio_lite.audit(release, conversations)")
        elif audit.get("tree_sha256") and audit["tree_sha256"] != self.tree.digest() and not allow_failed_audit:
            raise ValueError(
                "refusing to save: the tree changed after its audit. Audit it again and record the result "
                "(release.manifest['audit'] = clio_lite.audit(release, conversations).to_dict()), or pass "
                "allow_failed_audit=True."
            )
        elif not audit.get("passed") and not allow_failed_audit:
            errors = [f"{f.get('check')} at {f.get('node_id') or 'release'}: {f.get('detail')}"
                      for f in audit.get("findings", []) if f.get("severity") == "error"]
            raise ValueError(
                f"refusing to save a release that failed its audit ({len(errors)} errors: "
                f"{'; '.join(errors[:5])}). Fix the cause, or pass allow_failed_audit=True to save it anyway."
            )
        target = Path(path)
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} already exists; pass overwrite=True to replace a saved release.")
            if not target.is_dir() or set(os.listdir(target)) - set(RELEASE_FILES):
                raise FileExistsError(f"{target} holds files that are not a clio_lite release; refusing to replace.")
        files = {
            "tree.json": _dumps({"schema_version": SCHEMA_VERSION, "nodes": self.tree.to_dict()}).encode("utf-8"),
            "manifest.json": _dumps(self.manifest).encode("utf-8"),
            "nodes.parquet": _parquet_bytes(self.tree.to_pandas()),
        }
        return write_release_dir(target, files)

    def show(self, max_depth: int | None = None, widget: bool | None = None) -> None:
        """Show the release's tree: the explorer in a notebook (with the counts and audit verdict), else printed.

        Takes the parameters of :meth:`ClusterTree.show`.

        Examples
        --------
        >>> release.show()  # doctest: +SKIP
        """
        if widget or (widget is None and _in_notebook() and _has_anywidget()):
            from IPython.display import display

            display(self.explore(open_depth=max_depth or 1))
            return
        self.tree.show(max_depth, widget=False)

    def explore(self, open_depth: int = 1, height: int = 520) -> Any:
        """The notebook explorer of the release: its tree, with the manifest's counts and audit verdict on top.

        Takes the parameters of :meth:`ClusterTree.explore`.

        Examples
        --------
        >>> release.explore(open_depth=2)  # doctest: +SKIP
        """
        from .viz.widget import ClusterExplorer

        return ClusterExplorer(self, open_depth=open_depth, height=height)

    def to_html(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """Write a single self-contained HTML report: the tree, a search box, a details panel and the 2-D map.

        The page opens in any browser with no server and no network (styles, script and data are inline, and its
        content security policy forbids every fetch). It holds the release's own fields and the manifest's counts,
        thresholds, config hash and audit verdict, nothing else; the same release always gives the same bytes.
        See :func:`clio_lite.viz.report.render_html`.

        Parameters
        ----------
        path : str or path-like
            The file to write (``.html``); an existing file is replaced, missing directories are made.
        title : str, optional
            The page's title; ``"clio_lite release"`` by default.

        Returns
        -------
        pathlib.Path
            ``path``.

        Examples
        --------
        >>> release.to_html("report.html")  # doctest: +SKIP
        PosixPath('report.html')
        """
        from .viz.report import write_html

        return write_html(self, path, title=title)

    @classmethod
    def load(cls, path: str | os.PathLike, max_file_bytes: int = MAX_FILE_BYTES) -> Release:
        """Read a release saved by :meth:`save`, checking its schema version and every field.

        A release directory may come from anyone, so it is read as untrusted input: only ``tree.json`` and
        ``manifest.json`` are read (``nodes.parquet`` must be there, as a plain file, but is not parsed); a release
        file that is a symbolic link, not a regular file, over ``max_file_bytes``, not strict JSON, or holds a node
        whose fields have the wrong type or range, whose ``parent_id`` or ``depth`` disagrees with where it is
        nested, or whose id repeats, is refused with a :class:`~clio_lite.release_files.ReleaseFormatError` (a
        ``ValueError``) naming the file and the node. Nothing is unpickled; nothing outside ``path`` is touched.

        Versions: a release of an older schema version is migrated (version 1 had no facets: its nodes get empty
        ones, and its audit's tree digest is carried over to the migrated tree, which describes the same clusters);
        a release of a newer or unknown version is refused with a message saying which versions this clio_lite
        reads and how to read it.

        Parameters
        ----------
        path : str or path-like
            The release directory.
        max_file_bytes : int
            The largest ``tree.json`` or ``manifest.json`` read.

        Examples
        --------
        >>> release = Release.load("release/")  # doctest: +SKIP
        """
        root = Path(path)
        check_release_dir(root, RELEASE_FILES)
        manifest = check_manifest(read_json(root / "manifest.json", max_file_bytes), root / "manifest.json")
        tree_doc = read_json(root / "tree.json", max_file_bytes)
        where = root / "tree.json"
        if not isinstance(tree_doc, dict) or "nodes" not in tree_doc:
            raise ReleaseFormatError(f"{where}: expected a JSON object with 'schema_version' and 'nodes'.")
        version = tree_doc.get("schema_version")
        if version not in READABLE_SCHEMA_VERSIONS or isinstance(version, bool):
            newer = isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
            raise ValueError(
                f"{root} was saved with release schema version {version!r}; this clio_lite reads version "
                f"{SCHEMA_VERSION} (and migrates {', '.join(map(str, READABLE_SCHEMA_VERSIONS[:-1]))}). "
                + ("It was written by a newer clio_lite: upgrade clio_lite (pip install -U clio_lite), or "
                   if newer else "It is not a version any clio_lite wrote: ")
                + "install the clio_lite version named in its manifest ('versions') to read it."
            )
        nodes = [ClusterNode(**fields) for fields in flatten_nodes(tree_doc["nodes"], where, version >= 2)]
        release = cls(ClusterTree(nodes), manifest)
        if version < SCHEMA_VERSION:
            _migrate(release, version, root)
        return release

    def __repr__(self) -> str:
        counts = self.manifest.get("counts", {})
        return (
            f"Release({len(self.tree)} clusters in {self.tree.depth} levels; "
            f"{counts.get('released', 0):,} of {counts.get('read', 0):,} conversations released)"
        )


def _in_notebook() -> bool:
    """Whether this runs in an IPython kernel (Jupyter, JupyterLab, VS Code, Colab), which can display widgets."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _has_anywidget() -> bool:
    from importlib.util import find_spec

    return find_spec("anywidget") is not None


def _dumps(document: Any) -> str:
    # Sorted keys and a fixed layout: the same release always serialises to the same bytes.
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    return buffer.getvalue()


def _v1_digest(tree: ClusterTree) -> str:
    """The tree digest as schema version 1 computed it: nodes without a ``facets`` field."""

    def nest(node: ClusterNode) -> dict[str, Any]:
        row = node.to_dict()
        del row["facets"]
        return {**row, "children": [nest(child) for child in tree.children(node.id)]}

    return hashlib.sha256(_dumps([nest(root) for root in tree.roots]).encode("utf-8")).hexdigest()


def _migrate(release: Release, version: int, root: Path) -> None:
    """Bring a release loaded from an older schema version up to :data:`SCHEMA_VERSION`, in place.

    Version 1 → 2: nodes gained ``facets`` (empty here: none were computed). The clusters are unchanged, so an
    audit that vouched for the version-1 tree vouches for the migrated one: its digest is carried over, and the
    manifest records the migration. An audit digest that does not match the version-1 tree is left as it is (so
    ``save`` refuses the tree, as it would have before).
    """
    manifest = release.manifest
    audit = manifest.get("audit")
    if version == 1 and isinstance(audit, dict) and audit.get("tree_sha256") == _v1_digest(release.tree):
        audit["tree_sha256"] = release.tree.digest()
    manifest["migrated_from_schema_version"] = version
    manifest["schema_version"] = SCHEMA_VERSION
    logger.info("%s: migrated a release of schema version %d to version %d", root, version, SCHEMA_VERSION)
