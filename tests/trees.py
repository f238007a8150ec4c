"""Hand-built release nodes for the tests of the release zone (release, viz, report, audit)."""

from __future__ import annotations

from clio_lite.release import ClusterNode


def node(
    node_id: str,
    conversations: int,
    users: int | None = None,
    name: str | None = None,
    x: float | None = None,
    y: float = -1.25,
    share: float = 0.5,
    *,
    description: str | None = None,
    keywords: tuple[str, ...] | None = None,
) -> ClusterNode:
    """A node whose parent and depth follow from its path id ("0.1" is the second child of "0")."""
    return ClusterNode(
        id=node_id,
        parent_id=node_id.rsplit(".", 1)[0] if "." in node_id else None,
        depth=node_id.count(".") + 1,
        name=name or f"Topic {node_id}",
        description=description or f"Conversations about topic {node_id}.",
        keywords=keywords or (f"kw{node_id}", "shared"),
        conversations=conversations,
        users=users if users is not None else conversations // 2,
        share_of_parent=share,
        x=float(len(node_id)) / 3 if x is None else x,
        y=y,
    )
