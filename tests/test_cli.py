"""The command line: run writes the same tree as the API; show prints a saved tree; errors are readable."""

from __future__ import annotations

import json

import pytest

from clio_lite.cli import main
from tests.conftest import E2E_PARAMS


@pytest.mark.slow
def test_run_writes_the_same_tree_as_the_api_accounts_for_bad_lines_and_prints_it(
    corpus, saved_release, tmp_path, capsys
):
    source = tmp_path / "chats.jsonl"
    lines = [json.dumps(record).encode() for record in corpus]
    # Two lines no JSON reader could take: bytes that are not UTF-8, and a record cut off mid-way.
    lines += [b'{"id": "latin1", "user_id": "u", "text": "caf\xe9"}', b'{"id": "cut", "user_id": "u", "mess']
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "release"
    code = main([
        "run", str(source), "--out", str(out), "--min-users", str(E2E_PARAMS["min_users"]),
        "--min-conversations", str(E2E_PARAMS["min_conversations"]), "--random-state", "0", "--no-cache",
        "--quiet", "--html", str(tmp_path / "report.html"),
    ])
    assert code == 0
    assert "<script" in (tmp_path / "report.html").read_text(encoding="utf-8")
    printed = capsys.readouterr().out
    for name in ("tree.json", "nodes.parquet"):
        assert (out / name).read_bytes() == (saved_release / name).read_bytes(), name
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["read"] == len(corpus) + 2 and counts["rejected"] == 6 + 2
    assert counts["read"] == counts["released"] + counts["suppressed"] + counts["unclustered"] + counts["rejected"]
    tree = json.loads((out / "tree.json").read_text())
    assert tree["nodes"][0]["name"].split(" · ")[0] in printed
    assert "Where every conversation went" in printed


def test_show_prints_a_saved_release(saved_release, capsys):
    assert main(["show", str(saved_release), "--max-depth", "1"]) == 0
    printed = capsys.readouterr().out
    tree = json.loads((saved_release / "tree.json").read_text())
    assert tree["nodes"][0]["name"].split(" · ")[0] in printed
    # depth 1: a second-level name that differs from every top-level name is not printed
    top_names = {node["name"] for node in tree["nodes"]}
    deeper = [child["name"] for node in tree["nodes"] for child in node["children"] if child["name"] not in top_names]
    assert all(name not in printed for name in deeper)


def test_run_on_a_missing_file_fails_with_a_message(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "nope.jsonl" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_run_on_an_empty_file_fails_with_a_message(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["run", str(empty), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "empty.jsonl" in capsys.readouterr().out


def test_a_model_that_is_not_installed_fails_with_what_to_install(tmp_path, capsys):
    source = tmp_path / "chats.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": i, "user_id": f"u{i}", "messages": [{"role": "user", "content": f"question {i}"}]})
            + "\n"
            for i in range(3)
        )
    )
    code = main(["run", str(source), "--out", str(tmp_path / "out"), "--quiet", "--spacy-model", "xx_no_such_model"])
    assert code == 2
    assert "pip install" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
