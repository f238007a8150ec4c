"""Tests for the release: ``clio_lite.release`` (ClusterTree, Release.save/load, rendering)."""

from __future__ import annotations

import ast
import json
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

import clio_lite.release as release_module
from clio_lite.release import NODE_COLUMNS, RELEASE_FILES, SCHEMA_VERSION, ClusterNode, ClusterTree, Release
from tests.trees import node

PRIVATE_STAGES = {"scrub", "embed", "reduce", "cluster", "privacy", "name", "pipeline", "io", "schema", "audit"}


def sample_tree() -> ClusterTree:
    # Breadth-first, as the pipeline builds it; walk() must still give depth-first order.
    return ClusterTree([
        node("0", 120, name="Café · Crème brûlée"),
        node("1", 80),
        node("0.0", 70),
        node("0.1", 40),
        node("1.0", 50),
        node("0.0.0", 30),
    ])


def sample_manifest() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "config": {"min_users": 5, "min_conversations": 10},
        "config_hash": "abc123",
        "versions": {"clio_lite": "0.1.0"},
        "counts": {"read": 250, "rejected": 10, "accepted": 240, "released": 200, "suppressed": 25,
                   "unclustered": 15, "in_released_leaves": 150},
    }


def sample_release() -> Release:
    return Release(sample_tree(), sample_manifest())


def files_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# ----------------------------------------------------------------------------------------------------------
# ClusterTree navigation
# ----------------------------------------------------------------------------------------------------------


def test_roots_are_the_top_level_nodes_in_order() -> None:
    tree = sample_tree()
    assert [n.id for n in tree.roots] == ["0", "1"]
    assert all(n.parent_id is None for n in tree.roots)


def test_children_lists_direct_children_only() -> None:
    tree = sample_tree()
    assert [n.id for n in tree.children("0")] == ["0.0", "0.1"]
    assert [n.id for n in tree.children("0.0")] == ["0.0.0"]
    assert tree.children("0.0.0") == []
    assert tree.children("no such node") == []


def test_walk_is_depth_first_with_parents_before_children() -> None:
    tree = sample_tree()
    order = [n.id for n in tree.walk()]
    assert order == ["0", "0.0", "0.0.0", "0.1", "1", "1.0"]
    seen: set[str] = set()
    for n in tree.walk():
        assert n.parent_id is None or n.parent_id in seen
        seen.add(n.id)


def test_walk_from_a_node_covers_its_subtree_only() -> None:
    tree = sample_tree()
    assert [n.id for n in tree.walk("0.0")] == ["0.0", "0.0.0"]
    assert [n.id for n in tree.walk("1")] == ["1", "1.0"]


def test_getitem_finds_a_node_by_id_and_rejects_unknown_ids() -> None:
    tree = sample_tree()
    assert tree["0.1"].conversations == 40
    assert tree["0"].name == "Café · Crème brûlée"
    with pytest.raises(KeyError):
        tree["7"]


def test_depth_len_and_iteration() -> None:
    tree = sample_tree()
    assert tree.depth == 3
    assert len(tree) == 6
    assert {n.id for n in tree} == {"0", "1", "0.0", "0.1", "1.0", "0.0.0"}
    assert repr(tree) == "ClusterTree(6 nodes, 3 levels)"


def test_empty_tree_has_no_roots_and_depth_zero() -> None:
    tree = ClusterTree([])
    assert tree.roots == []
    assert tree.depth == 0
    assert list(tree.walk()) == []
    assert list(tree.to_pandas().columns) == list(NODE_COLUMNS)
    assert len(tree.to_pandas()) == 0
    assert tree.to_dict() == []


def test_to_pandas_has_the_node_columns_and_one_row_per_node_in_walk_order() -> None:
    tree = sample_tree()
    frame = tree.to_pandas()
    assert list(frame.columns) == list(NODE_COLUMNS)
    assert len(frame) == len(tree)
    assert frame["id"].tolist() == [n.id for n in tree.walk()]
    row = frame.set_index("id").loc["0.0"]
    assert row["parent_id"] == "0" and row["depth"] == 2 and row["conversations"] == 70
    assert list(row["keywords"]) == ["kw0.0", "shared"]
    assert pd.isna(frame.set_index("id").loc["0", "parent_id"])  # a root has no parent


def test_to_dict_nests_children_under_their_parents() -> None:
    nested = sample_tree().to_dict()
    assert [entry["id"] for entry in nested] == ["0", "1"]
    zero = nested[0]
    assert [c["id"] for c in zero["children"]] == ["0.0", "0.1"]
    assert [c["id"] for c in zero["children"][0]["children"]] == ["0.0.0"]
    assert zero["children"][0]["children"][0]["children"] == []
    assert zero["keywords"] == ["kw0", "shared"]
    assert set(zero) == set(NODE_COLUMNS) | {"children", "facets"}
    json.dumps(nested)  # plain JSON types only


# ----------------------------------------------------------------------------------------------------------
# Save and load
# ----------------------------------------------------------------------------------------------------------


def test_save_writes_exactly_the_three_release_files(tmp_path: Path) -> None:
    target = sample_release().save(tmp_path / "release")
    assert target == tmp_path / "release"
    assert sorted(p.name for p in target.iterdir()) == sorted(RELEASE_FILES)
    assert [p.name for p in tmp_path.iterdir()] == ["release"]  # no staging directory left behind


def test_saved_files_hold_the_tree_the_table_and_the_manifest(tmp_path: Path) -> None:
    rel = sample_release()
    target = rel.save(tmp_path / "release")
    tree_doc = json.loads((target / "tree.json").read_text(encoding="utf-8"))
    assert tree_doc == {"schema_version": SCHEMA_VERSION, "nodes": rel.tree.to_dict()}
    assert json.loads((target / "manifest.json").read_text(encoding="utf-8")) == rel.manifest
    frame = pd.read_parquet(target / "nodes.parquet")
    assert list(frame.columns) == list(NODE_COLUMNS)
    assert frame["id"].tolist() == [n.id for n in rel.tree.walk()]
    assert frame["conversations"].tolist() == [n.conversations for n in rel.tree.walk()]


def test_save_then_load_round_trips_nodes_and_manifest(tmp_path: Path) -> None:
    rel = sample_release()
    loaded = Release.load(rel.save(tmp_path / "release"))
    assert list(loaded.tree.walk()) == list(rel.tree.walk())
    assert loaded.manifest == rel.manifest
    assert loaded.counts == rel.manifest["counts"]
    assert loaded.tree["0"].keywords == ("kw0", "shared")


def test_saving_twice_gives_byte_identical_files(tmp_path: Path) -> None:
    first = files_bytes(sample_release().save(tmp_path / "a"))
    second = files_bytes(sample_release().save(tmp_path / "b"))
    again = files_bytes(sample_release().save(tmp_path / "a", overwrite=True))
    assert first == second == again
    assert set(first) == set(RELEASE_FILES)


def test_save_refuses_an_existing_directory_without_overwrite(tmp_path: Path) -> None:
    target = sample_release().save(tmp_path / "release")
    before = files_bytes(target)
    other = Release(ClusterTree([node("0", 5)]), {"counts": {}})
    with pytest.raises(FileExistsError, match="overwrite=True"):
        other.save(target)
    assert files_bytes(target) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileExistsError):
        other.save(empty)


def test_save_with_overwrite_replaces_a_previous_release(tmp_path: Path) -> None:
    target = sample_release().save(tmp_path / "release")
    other = Release(ClusterTree([node("0", 5)]), {"counts": {"read": 5}})
    other.save(target, overwrite=True)
    loaded = Release.load(target)
    assert [n.id for n in loaded.tree] == ["0"]
    assert loaded.manifest == {"counts": {"read": 5}}


def test_save_refuses_to_replace_a_directory_holding_other_files_even_with_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work")
    (target / "tree.json").write_text("{}")
    with pytest.raises(FileExistsError, match="not a clio_lite release"):
        sample_release().save(target, overwrite=True)
    assert (target / "thesis.tex").read_text() == "years of work"
    assert (target / "tree.json").read_text() == "{}"
    assert sorted(p.name for p in target.iterdir()) == ["thesis.tex", "tree.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]


def test_save_refuses_to_replace_a_file_even_with_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "release"
    target.write_text("not a directory")
    with pytest.raises(FileExistsError):
        sample_release().save(target, overwrite=True)
    assert target.read_text() == "not a directory"


def test_load_rejects_a_wrong_schema_version_naming_both_versions(tmp_path: Path) -> None:
    target = sample_release().save(tmp_path / "release")
    doc = json.loads((target / "tree.json").read_text(encoding="utf-8"))
    doc["schema_version"] = SCHEMA_VERSION + 98
    (target / "tree.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ValueError) as info:
        Release.load(target)
    message = str(info.value)
    assert f"version {SCHEMA_VERSION + 98}" in message
    assert f"reads version {SCHEMA_VERSION}" in message


@pytest.mark.parametrize("missing", RELEASE_FILES)
def test_load_rejects_a_directory_missing_a_release_file(tmp_path: Path, missing: str) -> None:
    target = sample_release().save(tmp_path / "release")
    (target / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        Release.load(target)


def test_load_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a clio_lite release"):
        Release.load(tmp_path / "nowhere")


names = st.text(min_size=1, max_size=30)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def random_trees(draw) -> ClusterTree:
    n_nodes = draw(st.integers(0, 12))
    nodes: list[ClusterNode] = []
    child_count: dict[str | None, int] = {}
    for i in range(n_nodes):
        parent = None if i == 0 else draw(st.sampled_from([None, *(n.id for n in nodes)]))
        index = child_count.get(parent, 0)
        child_count[parent] = index + 1
        node_id = str(index) if parent is None else f"{parent}.{index}"
        nodes.append(
            ClusterNode(
                id=node_id,
                parent_id=parent,
                depth=node_id.count(".") + 1,
                name=draw(names),
                description=draw(names),
                keywords=tuple(draw(st.lists(names, max_size=4))),
                conversations=draw(st.integers(0, 10**9)),
                users=draw(st.integers(0, 10**9)),
                share_of_parent=draw(finite),
                x=draw(finite),
                y=draw(finite),
            )
        )
    return ClusterTree(nodes)


@settings(max_examples=30, deadline=None)
@given(tree=random_trees(), seed=st.integers(0, 10**6))
def test_save_load_round_trips_random_trees(tree: ClusterTree, seed: int) -> None:
    manifest = {"counts": {"read": seed}, "note": "ünïcode ✓"}
    with tempfile.TemporaryDirectory() as tmp:
        loaded = Release.load(Release(tree, manifest).save(Path(tmp) / "r"))
    assert list(loaded.tree.walk()) == list(tree.walk())
    assert loaded.manifest == manifest


# ----------------------------------------------------------------------------------------------------------
# Display and JSON
# ----------------------------------------------------------------------------------------------------------


def test_render_shows_node_names_and_counts() -> None:
    console = Console(record=True, width=200)
    console.print(sample_tree().render())
    text = console.export_text()
    assert "2 top-level clusters" in text
    for n in sample_tree():
        assert n.name in text
    assert "120 conversations · 60 users" in text


def test_render_stops_at_max_depth() -> None:
    console = Console(record=True, width=200)
    console.print(sample_tree().render(max_depth=1))
    text = console.export_text()
    assert "Topic 1" in text and "Café · Crème brûlée" in text
    assert "Topic 0.0" not in text and "Topic 1.0" not in text


def test_show_prints_the_tree(capsys: pytest.CaptureFixture[str]) -> None:
    sample_tree().show(max_depth=2)
    out = capsys.readouterr().out
    assert "Topic 0.1" in out and "Topic 1.0" in out
    assert "Topic 0.0.0" not in out


def test_to_json_holds_schema_version_manifest_and_nested_tree() -> None:
    rel = sample_release()
    doc = json.loads(rel.to_json())
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["manifest"] == rel.manifest
    assert doc["tree"] == rel.tree.to_dict()
    assert "Café" in rel.to_json()  # not escaped to \\u sequences


def test_release_repr_and_to_pandas() -> None:
    rel = sample_release()
    assert repr(rel) == "Release(6 clusters in 3 levels; 200 of 250 conversations released)"
    pd.testing.assert_frame_equal(rel.to_pandas(), rel.tree.to_pandas())


# ----------------------------------------------------------------------------------------------------------
# Isolation from the private stages
# ----------------------------------------------------------------------------------------------------------


def imported_modules(source: str) -> set[str]:
    """Every module a source file imports, relative imports resolved against the ``clio_lite`` package."""
    found: set[str] = set()
    for stmt in ast.walk(ast.parse(source)):
        if isinstance(stmt, ast.Import):
            found.update(alias.name for alias in stmt.names)
        elif isinstance(stmt, ast.ImportFrom):
            base = "clio_lite" + ("." + stmt.module if stmt.module else "") if stmt.level else stmt.module or ""
            found.add(base)
            if stmt.level and not stmt.module:  # from . import privacy
                found.update(f"clio_lite.{alias.name}" for alias in stmt.names)
    return found


def private_imports(source: str) -> set[str]:
    return {m for m in imported_modules(source) if m.split(".")[0] == "clio_lite" and (
        m == "clio_lite" or m.split(".")[1] in PRIVATE_STAGES)}


def test_private_import_check_catches_every_import_form() -> None:
    for source in ["from .privacy import gate", "import clio_lite.scrub", "from clio_lite.name import X",
                   "from . import embed", "from clio_lite import pipeline", "def f():\n    from .io import x\n"]:
        assert private_imports(source), source
    assert not private_imports("import json\nfrom pathlib import Path\nimport pandas as pd")


def test_release_module_imports_nothing_from_the_private_stages() -> None:
    source = Path(release_module.__file__).read_text(encoding="utf-8")
    assert "pandas" in imported_modules(source)  # the parse sees the imports at all
    assert private_imports(source) == set()


# ----------------------------------------------------------------------------------------------------------
# Leaves, find, subtree, networkx
# ----------------------------------------------------------------------------------------------------------


def test_leaves_are_the_nodes_without_children_in_walk_order() -> None:
    tree = sample_tree()
    assert [n.id for n in tree.leaves] == ["0.0.0", "0.1", "1.0"]
    assert all(tree.children(n.id) == [] for n in tree.leaves)
    assert ClusterTree([]).leaves == []
    assert [n.id for n in ClusterTree([node("0", 5)]).leaves] == ["0"]


def test_find_matches_name_description_or_keyword_ignoring_case_in_walk_order() -> None:
    tree = ClusterTree([
        node("0", 120, name="Python · Pandas"),
        node("1", 80, name="Cooking"),
        node("0.0", 70, name="DataFrames"),
        replace(node("1.0", 50, name="Baking"), description="Bread and PANDAS-shaped cookies."),
        replace(node("0.1", 40, name="Plotting"), keywords=("matplotlib", "Pandas.plot")),
    ])
    assert [n.id for n in tree.find("pandas")] == ["0", "0.1", "1.0"]
    assert [n.id for n in tree.find("PANDAS")] == ["0", "0.1", "1.0"]
    assert [n.id for n in tree.find("dataframe")] == ["0.0"]
    assert [n.id for n in tree.find("kw1.0")] == ["1.0"]  # a keyword of the node() helper
    assert tree.find("no such topic") == []
    assert [n.id for n in tree.find("")] == [n.id for n in tree.walk()]


def test_find_folds_case_beyond_ascii() -> None:
    tree = sample_tree()
    assert [n.id for n in tree.find("CRÈME BRÛLÉE")] == ["0"]
    assert ClusterTree([node("0", 5, name="Straße")]).find("STRASSE")[0].id == "0"
    assert ClusterTree([node("0", 5, name="STRASSE")]).find("straße")[0].id == "0"


def test_subtree_makes_the_node_the_single_root_with_depths_rebased_and_ids_kept() -> None:
    tree = sample_tree()
    sub = tree.subtree("0")
    assert [n.id for n in sub.walk()] == ["0", "0.0", "0.0.0", "0.1"]
    assert [n.id for n in sub.roots] == ["0"]
    assert sub.roots[0].parent_id is None and sub.roots[0].depth == 1
    assert sub["0.0.0"].depth == 3 and sub.depth == 3

    deeper = tree.subtree("0.0")
    assert [n.id for n in deeper.walk()] == ["0.0", "0.0.0"]
    assert deeper["0.0"].parent_id is None and deeper["0.0"].depth == 1
    assert deeper["0.0.0"].parent_id == "0.0" and deeper["0.0.0"].depth == 2
    assert deeper.depth == 2 and len(deeper) == 2
    for n in deeper:  # everything but parent and depth describes the same cluster
        assert replace(n, depth=tree[n.id].depth, parent_id=tree[n.id].parent_id) == tree[n.id]
    assert tree["0.0"].depth == 2 and tree["0.0"].parent_id == "0"  # the original tree is untouched


def test_subtree_of_a_leaf_and_its_display_count_levels_from_the_new_root() -> None:
    tree = sample_tree()
    assert [n.id for n in tree.subtree("1.0")] == ["1.0"]
    console = Console(record=True, width=200)
    console.print(tree.subtree("0").render(max_depth=2))
    text = console.export_text()
    assert "1 top-level clusters" in text and "Topic 0.0" in text and "Topic 0.1" in text
    assert "Topic 0.0.0" not in text


def test_subtree_of_an_unknown_id_names_it() -> None:
    with pytest.raises(KeyError, match="'9.9'"):
        sample_tree().subtree("9.9")


def test_to_networkx_has_an_edge_from_each_parent_to_each_child_and_the_node_fields() -> None:
    tree = sample_tree()
    graph = tree.to_networkx()
    assert list(graph.nodes) == [n.id for n in tree.walk()]
    assert sorted(graph.edges) == sorted((n.parent_id, n.id) for n in tree if n.parent_id is not None)
    assert sorted(graph.successors("0")) == ["0.0", "0.1"]
    assert list(graph.predecessors("0.0.0")) == ["0.0"]
    attributes = graph.nodes["0"]
    assert attributes["name"] == "Café · Crème brûlée"
    assert attributes["conversations"] == 120 and attributes["users"] == 60 and attributes["depth"] == 1
    assert attributes["keywords"] == ["kw0", "shared"]
    assert set(attributes) == (set(NODE_COLUMNS) | {"facets"}) - {"id", "parent_id"}
    import networkx

    assert networkx.is_forest(graph) and networkx.number_weakly_connected_components(graph) == 2


def test_to_networkx_without_networkx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "networkx", None)  # makes the import fail
    with pytest.raises(ImportError, match=re.escape("pip install clio_lite[viz]")):
        sample_tree().to_networkx()


def test_plot_methods_import_the_views_lazily() -> None:
    source = Path(release_module.__file__).read_text(encoding="utf-8")
    top_level = {alias.name for stmt in ast.parse(source).body if isinstance(stmt, ast.Import) for alias in stmt.names}
    top_level |= {stmt.module for stmt in ast.parse(source).body if isinstance(stmt, ast.ImportFrom) and stmt.module}
    assert not any("plotly" in m or "viz" in m or "networkx" in m for m in top_level)
    figure = sample_tree().plot_icicle(max_depth=1)
    assert list(figure.data[0].ids)[1:] == [n.id for n in sample_tree().walk()]


def audited(passed: bool) -> Release:
    tree = ClusterTree([node("0", 60)])
    finding = {"check": "thresholds", "node_id": "0", "field": "users", "detail": "3 users", "severity": "error"}
    return Release(tree, {"counts": {}, "audit": {"passed": passed, "findings": [] if passed else [finding]}})


def test_save_refuses_a_release_whose_audit_failed_unless_told(tmp_path):
    with pytest.raises(ValueError, match="failed its audit.*thresholds at 0: 3 users"):
        audited(False).save(tmp_path / "failed")
    assert not (tmp_path / "failed").exists()
    saved = audited(False).save(tmp_path / "forced", allow_failed_audit=True)
    assert json.loads((saved / "manifest.json").read_text())["audit"]["passed"] is False
    assert audited(True).save(tmp_path / "passed").is_dir()


def test_save_refuses_a_tree_changed_after_its_audit(tmp_path):
    release = audited(True)
    release.manifest["audit"]["tree_sha256"] = release.tree.digest()
    assert release.save(tmp_path / "same").is_dir()
    changed = Release(ClusterTree([replace(release.tree["0"], name="Renamed after the audit")]), release.manifest)
    with pytest.raises(ValueError, match="changed after its audit"):
        changed.save(tmp_path / "changed")
    assert not (tmp_path / "changed").exists()
