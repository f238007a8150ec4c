"""Tests for the release: ``clio_lite.release`` (ClusterTree, Release.save/load, rendering)."""

from __future__ import annotations

import ast
import functools
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
from clio_lite.release_files import ReleaseFormatError
from tests.strategies import json_values
from tests.trees import node

# The release zone may import only itself; every other module of the package is a private stage, including
# ones added later (an allowlist, so a new stage cannot slip through).
RELEASE_ZONE = {"release", "release_files", "viz"}


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
                share_of_parent=draw(st.floats(0, 1)),
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
        m == "clio_lite" or m.split(".")[1] not in RELEASE_ZONE)}


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


# ----------------------------------------------------------------------------------------------------------
# Schema versions: a real version-1 release, migrated on load; newer versions refused
# ----------------------------------------------------------------------------------------------------------

V1_RELEASE = Path(__file__).parent / "data" / "release_v1"


def test_a_release_saved_by_schema_version_1_loads_migrated() -> None:
    assert json.loads((V1_RELEASE / "tree.json").read_text())["schema_version"] == 1  # really the old format
    release = Release.load(V1_RELEASE)
    assert len(release.tree) == 26 and release.tree.depth == 2
    assert all(node.facets == {} for node in release.tree)
    assert release.tree["0.0"].name == "Email · Mention · Deadline" and release.tree["0.0"].users == 12
    assert release.counts["read"] == 400 and release.counts["released"] == 391
    assert release.manifest["schema_version"] == SCHEMA_VERSION
    assert release.manifest["migrated_from_schema_version"] == 1


def test_a_migrated_release_keeps_its_audit_and_saves_as_the_current_version(tmp_path: Path) -> None:
    release = Release.load(V1_RELEASE)
    assert release.manifest["audit"]["passed"]
    assert release.manifest["audit"]["tree_sha256"] == release.tree.digest()  # carried over to the migrated tree
    saved = release.save(tmp_path / "v2")  # no allow_failed_audit needed
    assert json.loads((saved / "tree.json").read_text())["schema_version"] == SCHEMA_VERSION
    again = Release.load(saved)
    assert list(again.tree.walk()) == list(release.tree.walk())
    assert again.manifest == release.manifest


def test_a_version_1_release_edited_after_its_audit_is_not_vouched_for(tmp_path: Path) -> None:
    copy = tmp_path / "v1"
    copy.mkdir()
    for name in RELEASE_FILES:
        (copy / name).write_bytes((V1_RELEASE / name).read_bytes())
    doc = json.loads((copy / "tree.json").read_text())
    doc["nodes"][0]["name"] = "Edited by hand"
    (copy / "tree.json").write_text(json.dumps(doc))
    release = Release.load(copy)
    with pytest.raises(ValueError, match="changed after its audit"):
        release.save(tmp_path / "out")


@pytest.mark.parametrize(
    ("version", "fragment"),
    [(SCHEMA_VERSION + 1, "newer clio_lite: upgrade clio_lite"), (0, "not a version any clio_lite wrote"),
     ("2", "not a version any clio_lite wrote"), (True, "not a version"), (None, "not a version")],
)
def test_an_unknown_or_future_schema_version_is_refused_with_what_to_do(
    tmp_path: Path, version: Any, fragment: str
) -> None:
    target = sample_release().save(tmp_path / "release")
    doc = json.loads((target / "tree.json").read_text(encoding="utf-8"))
    doc["schema_version"] = version
    (target / "tree.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ValueError) as info:
        Release.load(target)
    assert fragment in str(info.value) and f"reads version {SCHEMA_VERSION}" in str(info.value)


# ----------------------------------------------------------------------------------------------------------
# Safe loading: a release directory from an untrusted source
# ----------------------------------------------------------------------------------------------------------


def saved(tmp_path: Path) -> Path:
    return sample_release().save(tmp_path / "release")


def edit_tree(target: Path, change) -> Path:
    doc = json.loads((target / "tree.json").read_text(encoding="utf-8"))
    change(doc)
    (target / "tree.json").write_text(json.dumps(doc), encoding="utf-8")
    return target


@pytest.mark.parametrize("name", ["tree.json", "manifest.json", "nodes.parquet"])
def test_a_release_file_that_is_a_symbolic_link_is_refused(tmp_path: Path, name: str) -> None:
    target = saved(tmp_path)
    outside = tmp_path / "outside.json"
    outside.write_bytes((target / name).read_bytes())
    (target / name).unlink()
    (target / name).symlink_to(outside)
    with pytest.raises(ReleaseFormatError, match="symbolic link"):
        Release.load(target)


def test_a_release_file_that_is_a_fifo_or_a_directory_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    target = saved(tmp_path)
    (target / "tree.json").unlink()
    os.mkfifo(target / "tree.json")  # opening a FIFO for reading would block forever
    with pytest.raises(ReleaseFormatError, match="not a regular file"):
        Release.load(target)
    (target / "tree.json").unlink()
    (target / "tree.json").mkdir()
    with pytest.raises(ReleaseFormatError, match="not a regular file"):
        Release.load(target)


def test_an_absurdly_large_release_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    target = saved(tmp_path)
    size = (target / "tree.json").stat().st_size
    with pytest.raises(ReleaseFormatError, match=f"{size:,} bytes, over the limit of 1,000"):
        Release.load(target, max_file_bytes=1000)
    assert len(Release.load(target, max_file_bytes=size).tree) == len(sample_tree())


def test_load_reads_the_json_files_only_not_the_parquet_table(tmp_path: Path) -> None:
    target = saved(tmp_path)
    (target / "nodes.parquet").write_bytes(b"not parquet at all")
    assert list(Release.load(target).tree.walk()) == list(sample_tree().walk())


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"schema_version": 2, "nodes": [', "not valid JSON"),
        (b'{"schema_version": 2, "nodes": [{"x": NaN}]}', "not strict JSON"),
        (b'{"schema_version": 2, "nodes": [{"x": Infinity}]}', "not strict JSON"),
        (b'{"schema_version": 2, "nodes": [{"id": ' + b"9" * 5000 + b"}]}", "not strict JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[]", "expected a JSON object"),
        (b'{"schema_version": 2}', "expected a JSON object with 'schema_version' and 'nodes'"),
        (b'{"schema_version": 2, "nodes": {}}', "'nodes' must be a list"),
    ],
    ids=["empty", "utf16", "cut", "nan", "infinity", "huge-int", "deep", "list", "no-nodes", "nodes-object"],
)
def test_a_tree_file_that_is_not_strict_json_of_the_right_shape_is_refused(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    target = saved(tmp_path)
    (target / "tree.json").write_bytes(content)
    with pytest.raises(ReleaseFormatError, match=re.escape(fragment)):
        Release.load(target)


def _set(path: list[Any], key: str, value: Any):
    def change(doc: dict[str, Any]) -> None:
        entry = doc["nodes"]
        for step in path:
            entry = entry[step]
        if value is KeyError:
            del entry[key]
        else:
            entry[key] = value
    return change


ROOT_NODE, CHILD = [0], [0, "children", 0]
BAD_NODES = [
    (_set(ROOT_NODE, "id", 7), "'id' must be a non-empty string"),
    (_set(ROOT_NODE, "id", ""), "'id' must be a non-empty string"),
    (_set([0, "children", 0, "children", 0], "id", "1"), "appears twice"),
    (_set(CHILD, "parent_id", "1"), "parent ids disagree"),
    (_set(CHILD, "parent_id", "0.0"), "parent ids disagree"),  # a node claiming to be its own parent: a cycle
    (_set(ROOT_NODE, "parent_id", "0.0"), "parent ids disagree"),
    (_set(CHILD, "depth", 5), "expected 2"),
    (_set(ROOT_NODE, "depth", True), "expected 1"),
    (_set(ROOT_NODE, "users", -1), "'users' must be a non-negative integer"),
    (_set(ROOT_NODE, "users", 1.5), "'users' must be a non-negative integer"),
    (_set(ROOT_NODE, "conversations", "120"), "'conversations' must be a non-negative integer"),
    (_set(ROOT_NODE, "conversations", False), "'conversations' must be a non-negative integer"),
    (_set(ROOT_NODE, "share_of_parent", -0.5), "'share_of_parent' must be a finite number >= 0"),
    (_set(ROOT_NODE, "x", "left"), "'x' must be a finite number"),
    (_set(ROOT_NODE, "y", None), "'y' must be a finite number"),
    (_set(ROOT_NODE, "name", ["a"]), "'name' must be a string"),
    (_set(ROOT_NODE, "description", "d" * 100_001), "'description' must be a string"),
    (_set(ROOT_NODE, "keywords", ["ok", 3]), "'keywords' must be a list of strings"),
    (_set(ROOT_NODE, "keywords", "python"), "'keywords' must be a list of strings"),
    (_set(ROOT_NODE, "facets", {"language": {"en": -3}}), "'facets' must map"),
    (_set(ROOT_NODE, "facets", {"language": ["en"]}), "'facets' must map"),
    (_set(ROOT_NODE, "children", {"0.0": {}}), "'children' must be a list"),
    (_set(ROOT_NODE, "name", KeyError), "missing name"),
    (_set(ROOT_NODE, "__class__", "os.system"), "unknown fields '__class__'"),
    (lambda doc: doc["nodes"].append("node"), "must be a JSON object, got a string"),
]


@pytest.mark.parametrize(("change", "fragment"), BAD_NODES)
def test_a_node_with_a_wrong_type_range_parent_or_id_is_refused_naming_it(
    tmp_path: Path, change, fragment: str
) -> None:
    target = edit_tree(saved(tmp_path), change)
    with pytest.raises(ReleaseFormatError) as info:
        Release.load(target)
    assert fragment in str(info.value)
    assert str(target / "tree.json") in str(info.value)


def test_a_tree_deeper_than_the_limit_is_refused_without_recursion(tmp_path: Path) -> None:
    from clio_lite.release_files import MAX_TREE_DEPTH

    def deep(doc: dict[str, Any]) -> None:
        entry = doc["nodes"][0]
        for level in range(MAX_TREE_DEPTH + 5):
            child = {**entry, "id": f"d{level}", "parent_id": entry["id"], "depth": entry["depth"] + 1,
                     "children": []}
            entry["children"] = [child]
            entry = child

    with pytest.raises(ReleaseFormatError, match=f"more than {MAX_TREE_DEPTH} levels"):
        Release.load(edit_tree(saved(tmp_path), deep))


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [([], "must be a JSON object"), ({"counts": {"read": -1}}, "'counts' must map"),
     ({"counts": []}, "'counts' must map"), ({"audit": "passed"}, "'audit' must be a JSON object")],
)
def test_a_manifest_of_the_wrong_shape_is_refused(tmp_path: Path, manifest: Any, fragment: str) -> None:
    target = saved(tmp_path)
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReleaseFormatError, match=re.escape(fragment)):
        Release.load(target)


@functools.cache
def pristine_release_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        return files_bytes(sample_release().save(Path(tmp) / "release"))


def fresh_copy(tmp: str) -> Path:
    target = Path(tmp) / "release"
    target.mkdir()
    for name, data in pristine_release_files().items():
        (target / name).write_bytes(data)
    return target


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_damaged_release_files_load_or_are_refused_with_a_value_error(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = fresh_copy(tmp)
        name = data.draw(st.sampled_from(["tree.json", "manifest.json"]))
        raw = bytearray((target / name).read_bytes())
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(raw) - 1))
            action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
            if action == "flip":
                raw[at] ^= data.draw(st.integers(1, 255))
            elif action == "cut":
                del raw[at:]
                break
            else:
                raw[at:at] = data.draw(st.sampled_from([b"[", b"{", b'"', b"-1", b"null", b"1e999", b'"x":0,']))
        (target / name).write_bytes(bytes(raw))
        try:
            release = Release.load(target)
        except ValueError:  # ReleaseFormatError or a refused schema version: an error a user can act on
            return
        for node_ in release.tree:  # what loads is well-formed
            assert node_.conversations >= 0 and node_.users >= 0 and isinstance(node_.name, str)


@settings(max_examples=100, deadline=None)
@given(field=st.sampled_from(NODE_COLUMNS), value=json_values)
def test_any_json_value_in_any_node_field_loads_valid_or_is_refused(field: str, value: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = edit_tree(fresh_copy(tmp), _set(CHILD, field, value))
        try:
            release = Release.load(target)
        except ReleaseFormatError:
            return
        child = release.tree.children("0")[0]
        assert isinstance(child.id, str) and child.parent_id == "0" and child.depth == 2
        assert all(isinstance(k, str) for k in child.keywords)


# ----------------------------------------------------------------------------------------------------------
# No pickle anywhere: releases and caches are plain data
# ----------------------------------------------------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "jsonpickle"}
UNSAFE_CALLS = {"read_pickle", "to_pickle"}


def unsafe_loading(source: str) -> list[str]:
    """Imports of pickle-like modules, torch.load, pandas' pickle I/O and numpy loads that allow pickles."""
    found = [f"import {m}" for m in imported_modules(source) if m.split(".")[0] in UNSAFE_MODULES]
    for call in ast.walk(ast.parse(source)):
        if not isinstance(call, ast.Call):
            continue
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        owner = call.func.value if isinstance(call.func, ast.Attribute) else None
        owner_name = getattr(owner, "id", getattr(owner, "attr", ""))
        if name in UNSAFE_CALLS:
            found.append(name)
        if name == "load" and owner_name == "torch":
            found.append("torch.load")
        if any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
               for k in call.keywords):
            found.append(f"{name}(allow_pickle=...)")
    return found


def test_the_unsafe_loading_check_catches_every_form() -> None:
    for source in ["import pickle", "from joblib import load", "import cloudpickle as cp", "torch.load(path)",
                   "np.load(path, allow_pickle=True)", "pd.read_pickle(p)", "df.to_pickle(p)", "import dill",
                   "def f():\n    import marshal\n"]:
        assert unsafe_loading(source), source
    assert not unsafe_loading("np.load(path)\nnp.load(path, allow_pickle=False)\njson.load(f)\nimport pickletools2")


# The one exception: the executor hands its scrubber to its own worker processes through a pipe, pickled in memory
# by this process (as Ray pickles it for its actors). Nothing read from a file or the network is unpickled there.
IPC_ONLY = {"executor.py": {"import pickle", "import cloudpickle", "import joblib.externals.loky"}}


def _unpickles_a_file(source: str) -> bool:
    """``pickle.load(file)``, ``pickle.Unpickler`` or ``cloudpickle.load``: reading pickles from a stream."""
    for call in ast.walk(ast.parse(source)):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
            owner = getattr(call.func.value, "id", "")
            if owner in {"pickle", "cloudpickle"} and call.func.attr in {"load", "Unpickler"}:
                return True
    return False


def test_no_module_of_clio_lite_uses_pickle_or_anything_that_unpickles() -> None:
    package = Path(release_module.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 10
    offenders = {}
    for path in sources:
        name, source = str(path.relative_to(package)), path.read_text()
        found = set(unsafe_loading(source)) - IPC_ONLY.get(name, set())
        if found or (name in IPC_ONLY and _unpickles_a_file(source)):
            offenders[name] = sorted(found) or ["reads pickles from a stream"]
    assert offenders == {}


def test_the_ipc_exception_still_catches_reading_pickles_from_a_file() -> None:
    assert _unpickles_a_file("import pickle\nwith open(p, 'rb') as f:\n    w = pickle.load(f)\n")
    assert not _unpickles_a_file("import pickle\nw = pickle.loads(payload)\n")


def test_the_release_file_module_imports_nothing_from_the_private_stages() -> None:
    import clio_lite.release_files as release_files

    source = Path(release_files.__file__).read_text(encoding="utf-8")
    assert "json" in imported_modules(source)
    assert private_imports(source) == set()


# ----------------------------------------------------------------------------------------------------------
# Faults while saving: a full disk, a read-only file system, no permission
# ----------------------------------------------------------------------------------------------------------

SAVE = """
import json, sys
from clio_lite.release import ClusterTree, Release
from tests.trees import node
size = int(sys.argv[2])
tree = ClusterTree([node(str(i), 100, description="d" * 2000) for i in range(size)])
try:
    Release(tree, {"counts": {"read": size}}).save(sys.argv[1], overwrite=True)
    print(json.dumps({"ok": True}))
except OSError as error:
    print(json.dumps({"errno": error.errno, "message": str(error), "filename": error.filename}))
"""
SMALL_RELEASE = SAVE.replace("int(sys.argv[2])", "1")


def test_a_full_disk_gives_a_clear_error_naming_the_path_and_leaves_no_half_written_release() -> None:
    import errno

    from tests.faults import needs_tmpfs, run_python, shared_tempdir

    needs_tmpfs()
    disk = shared_tempdir()
    try:
        target = disk / "release"
        result = run_python(SAVE, str(target), "200", tmpfs=disk, tmpfs_size="64k",
                            setup=f"import json, os\nos.listdir('{disk}')")
        assert result.get("errno") == errno.ENOSPC, result
        assert result["message"].startswith(f"cannot save the release to {target}: No space left on device")
        assert "while writing tree.json" in result["message"] and "Free some disk space" in result["message"]
        assert result["filename"] == str(target)
        # the old release survives a failed overwrite, and no staging directory is left behind
        check = f"""
import json, os
from clio_lite.release import Release
{SMALL_RELEASE.replace("sys.argv[1]", repr(str(target)))}
""" + SAVE.replace("sys.argv[1]", repr(str(target))).replace("int(sys.argv[2])", "200") + f"""
print(json.dumps({{"files": sorted(os.listdir('{disk}')), "nodes": len(Release.load('{target}').tree)}}))
"""
        after = run_python(check, tmpfs=disk, tmpfs_size="64k")
        assert after == {"files": ["release"], "nodes": 1}
    finally:
        import shutil

        shutil.rmtree(disk, ignore_errors=True)


def test_a_read_only_file_system_gives_a_clear_error_and_keeps_the_old_release() -> None:
    import errno
    import shutil

    from tests.faults import needs_tmpfs, run_python, shared_tempdir

    needs_tmpfs()
    disk = shared_tempdir()
    try:
        target = disk / "release"
        result = run_python(SAVE, str(target), "3", tmpfs=disk, tmpfs_size="1m",
                            setup=SMALL_RELEASE.replace("sys.argv[1]", repr(str(target))), read_only=True)
        assert result.get("errno") == errno.EROFS, result
        assert f"cannot save the release to {target}: Read-only file system" in result["message"]
        assert "That file system is read-only" in result["message"]
    finally:
        shutil.rmtree(disk, ignore_errors=True)


def test_a_directory_without_write_permission_gives_a_clear_error_naming_the_path() -> None:
    import errno
    import shutil

    from tests.faults import needs_unprivileged_user, run_python, shared_tempdir

    needs_unprivileged_user()
    base = shared_tempdir()
    try:
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        result = run_python(SAVE, str(locked / "release"), "3", unprivileged=True)
        assert result.get("errno") in (errno.EACCES, errno.EPERM), result
        assert f"cannot save the release to {locked / 'release'}: Permission denied" in result["message"]
        assert f"while creating a temporary directory in {locked}" in result["message"]
        assert "save to a directory you own" in result["message"]
        assert list(locked.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
