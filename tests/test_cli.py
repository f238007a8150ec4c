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
        "--quiet", "--html", str(tmp_path / "report.html"), "--rejections", str(tmp_path / "rejections.jsonl"),
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
    # every rejection listed, by position, id, code and reason, without content
    written = (tmp_path / "rejections.jsonl").read_text()
    rows = [json.loads(line) for line in written.splitlines()]
    assert len(rows) == counts["rejected"] and set(rows[0]) == {"index", "id", "code", "field", "reason"}
    assert {row["id"] for row in rows} >= {"bad-no-user", "bad-empty", "bad-role", "bad-content", "bad-huge"}
    assert [row["code"] for row in rows[-2:]] == ["encoding", "json"]
    for content in ("hello there", "once upon a time", "a different conversation", "xxxxxxxx", "caf"):
        assert content not in written


def test_show_prints_a_saved_release(saved_release, capsys):
    assert main(["show", str(saved_release), "--max-depth", "1"]) == 0
    printed = capsys.readouterr().out
    tree = json.loads((saved_release / "tree.json").read_text())
    assert tree["nodes"][0]["name"].split(" · ")[0] in printed
    # depth 1: a second-level name that differs from every top-level name is not printed
    top_names = {node["name"] for node in tree["nodes"]}
    deeper = [child["name"] for node in tree["nodes"] for child in node["children"] if child["name"] not in top_names]
    # (matched as tree lines: a one-word deeper name may be a word of a top-level name)
    assert all(f"── {name}  " not in printed for name in deeper)
    assert printed.count("── ") == len(tree["nodes"])  # one line per top-level cluster, none deeper


def test_run_on_a_missing_file_fails_with_a_message(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "nope.jsonl" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_run_with_an_unknown_facet_fails_with_the_registered_names(tmp_path, capsys):
    data = tmp_path / "chats.jsonl"
    data.write_text(json.dumps({"id": 1, "user_id": "u", "text": "hello there"}) + "\n")
    assert main(["run", str(data), "--out", str(tmp_path / "out"), "--quiet", "--facets", "language,mood"]) == 2
    out = capsys.readouterr().out
    assert "mood" in out and "language" in out and "turns" in out
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


def write_records(path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def test_rejections_are_written_even_when_every_record_is_rejected(tmp_path, capsys):
    source = tmp_path / "chats.jsonl"
    records = [{"id": i, "messages": [{"role": "user", "content": "my secret question"}]} for i in range(4)]
    write_records(source, records)
    rejections = tmp_path / "out" / "rejections.jsonl"
    code = main(["run", str(source), "--out", str(tmp_path / "release"), "--quiet", "--rejections", str(rejections)])
    assert code == 2
    assert "all rejected" in " ".join(capsys.readouterr().out.split())
    rows = [json.loads(line) for line in rejections.read_text().splitlines()]
    assert [(row["index"], row["id"], row["code"], row["field"]) for row in rows] == [
        (i, str(i), "missing", "user_id") for i in range(4)
    ]
    assert "secret" not in rejections.read_text()
    assert not (tmp_path / "release").exists()


@pytest.mark.parametrize("option", ["--out", "--rejections"])
def test_an_output_that_cannot_be_written_fails_before_any_fitting(tmp_path, capsys, option):
    source = tmp_path / "chats.jsonl"
    write_records(source, [{"id": 1, "user_id": "u", "text": "hello"}])
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where a folder is needed")
    args = {"--out": str(tmp_path / "release"), "--rejections": str(tmp_path / "rejections.jsonl")}
    args[option] = str(blocker / "inside")
    code = main(["run", str(source), "--quiet", *[part for pair in args.items() for part in pair]])
    assert code == 2
    printed = " ".join(capsys.readouterr().out.split())
    assert f"cannot write the {'release directory' if option == '--out' else 'rejections file'}" in printed
    assert f"{blocker} is a file, not a folder" in printed


def test_show_of_a_damaged_release_fails_with_a_message_not_a_traceback(saved_release, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in saved_release.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / "tree.json").write_text('{"schema_version": 99, "nodes": []}')
    assert main(["show", str(broken)]) == 2
    printed = " ".join(capsys.readouterr().out.split())
    assert "schema version 99" in printed and "upgrade clio_lite" in printed
    assert main(["show", str(tmp_path / "nowhere")]) == 2


def test_distill_makes_the_static_model_once_and_says_where(static_models_dir, tmp_path, capsys):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(static_models_dir, models, ignore=shutil.ignore_patterns(".distilling-*"))
    (distilled,) = [path for path in models.iterdir() if path.name.startswith("model2vec-")]
    assert main(["distill", "--models-dir", str(models)]) == 0  # already there: found, not distilled again
    assert str(distilled) in capsys.readouterr().out.replace("\n", "")
    assert [path.name for path in models.iterdir()] == [distilled.name]


def test_run_in_fast_mode_without_model2vec_names_the_extra(tmp_path, capsys, monkeypatch):
    import clio_lite.embed as embed

    installed = embed.metadata.version

    def not_installed(name):
        if name == "model2vec":
            raise embed.metadata.PackageNotFoundError(name)
        return installed(name)

    source = tmp_path / "chats.jsonl"
    source.write_text(json.dumps({"id": "a", "user_id": "u", "text": "hello there"}) + "\n")
    monkeypatch.setattr(embed.metadata, "version", not_installed)
    code = main(["run", str(source), "--out", str(tmp_path / "release"), "--mode", "fast", "--no-cache", "--quiet"])
    assert code == 2 and "clio_lite[fast]" in capsys.readouterr().out
