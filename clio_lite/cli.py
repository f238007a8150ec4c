"""The command line: ``clio-lite run INPUT --out DIR``, ``clio-lite demo``, ``clio-lite show DIR``,
``clio-lite audit DIR [--against INPUT]``, ``clio-lite distill``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

console = Console()
SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "sample.jsonl.gz"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clio-lite", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="fit on a file of conversations and write a release")
    run.add_argument("input", help="conversations: .jsonl, .jsonl.gz, .json or .parquet")
    _add_fit_options(run, default_out=None)

    demo = commands.add_parser("demo", help="run on the bundled synthetic sample")
    _add_fit_options(demo, default_out="release")

    show = commands.add_parser("show", help="print a saved release's tree")
    show.add_argument("release", help="a release directory")
    show.add_argument("--max-depth", type=int, default=None, help="levels to print")

    audit = commands.add_parser("audit", help="check a saved release; exit 1 if it fails")
    audit.add_argument("release", help="a release directory")
    audit.add_argument("--against", default=None, help="the conversations it was made from, for the text checks")

    distill = commands.add_parser(
        "distill", help="distil the fast mode's static embedding model now (offline, once per machine)"
    )
    distill.add_argument("--models-dir", default=None, help="where to keep it (default ~/.cache/clio_lite/models)")
    return parser


def _add_fit_options(parser: argparse.ArgumentParser, default_out: str | None) -> None:
    parser.add_argument("--out", required=default_out is None, default=default_out, help="release directory")
    parser.add_argument(
        "--html",
        default=None if default_out is None else f"{default_out}.html",
        help="also write a self-contained HTML report of the release to this file",
    )
    parser.add_argument("--min-users", type=int, default=25, help="distinct users a cluster needs (default 25)")
    parser.add_argument("--min-conversations", type=int, default=50, help="conversations a cluster needs")
    parser.add_argument("--random-state", type=int, default=0, help="seed for every stochastic stage")
    parser.add_argument("--privacy", choices=("k-anonymity", "dp"), default="k-anonymity",
                        help="exact counts behind thresholds (default), or user-level differential privacy")
    parser.add_argument("--epsilon", type=float, default=1.0, help="DP budget epsilon (with --privacy dp)")
    parser.add_argument("--delta", type=float, default=1e-5, help="DP budget delta (with --privacy dp)")
    parser.add_argument("--max-depth", type=int, default=None, help="levels of the tree to print")
    parser.add_argument("--no-cache", action="store_true", help="do not cache embeddings on disk")
    parser.add_argument(
        "--embedding-model",
        default=None,
        help="sentence-transformers model name or directory (default all-MiniLM-L6-v2)",
    )
    parser.add_argument("--spacy-model", default=None, help="an installed spaCy model for PII scrubbing")
    parser.add_argument(
        "--mode", choices=("default", "fast"), default="default",
        help="'fast': a static embedding model distilled from MiniLM and pattern-first scrubbing (needs the fast "
        "extra; see docs/scaling.md for what it costs in quality)",
    )
    parser.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run scrubbing and embedding on the Ray cluster at ADDRESS ('auto', 'ray://head:10001', 'local' "
        "for a new local cluster); needs the ray extra",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--facets", default=None,
        help="comma-separated facets to break every cluster down by, e.g. language,turns,affective",
    )
    parser.add_argument(
        "--allow-failed-audit", action="store_true", help="write the release even if its audit fails (not advised)"
    )
    parser.add_argument(
        "--rejections",
        default=None,
        metavar="FILE",
        help="write the rejected records to FILE as JSONL: index, id, code, field and reason, never content",
    )


def _fit_and_save(input_path: str | Path, args: argparse.Namespace) -> int:
    from . import facets
    from .embed import SentenceTransformerEmbedder
    from .io import load_conversations, write_rejections
    from .pipeline import Clio, default_cache_dir
    from .scrub import PresidioScrubber

    problem = _unwritable(args.out, "release directory") or (
        _unwritable(args.rejections, "rejections file") if args.rejections else None
    )
    if problem:  # found now, not after an hour of fitting
        console.print(f"[red]error:[/red] {escape(problem)}")
        return 2
    facet_names = [name.strip() for name in args.facets.split(",") if name.strip()] if args.facets else None
    unknown = sorted(set(facet_names or ()) - set(facets.names()))
    if unknown:
        known = ", ".join(facets.names())
        console.print(f"[red]error:[/red] unknown facet(s) {', '.join(unknown)}; choose from {known}")
        return 2
    cache_dir = None if args.no_cache else default_cache_dir()
    clio = Clio(
        facets=facet_names,
        min_users=args.min_users,
        min_conversations=args.min_conversations,
        random_state=args.random_state,
        privacy=args.privacy,
        epsilon=args.epsilon,
        delta=args.delta,
        scrubber=None if args.spacy_model is None else PresidioScrubber(spacy_model=args.spacy_model),
        embedder=None
        if args.embedding_model is None
        else SentenceTransformerEmbedder(model=args.embedding_model, cache_dir=cache_dir, verbose=not args.quiet),
        cache_dir=False if args.no_cache else None,
        verbose=not args.quiet,
        executor=_executor(args.ray),
        mode=args.mode,
    )
    try:
        conversations = load_conversations(input_path)
        if args.rejections:  # written before fitting, so that they are there even if the fit fails
            write_rejections(conversations.rejected, args.rejections)
            console.print(f"{len(conversations.rejected):,} rejected records listed in [bold]{args.rejections}[/bold]")
        clio.fit(conversations)
    except (FileNotFoundError, ModuleNotFoundError, ValueError, OSError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        return 2
    release = clio.release_
    try:
        path = release.save(args.out, overwrite=True, allow_failed_audit=args.allow_failed_audit)
    except (FileExistsError, ValueError, OSError) as error:
        if not isinstance(error, OSError) or isinstance(error, FileExistsError):
            console.print(clio.audit_.summary())
        console.print(f"[red]error:[/red] {escape(str(error))}")
        return 1
    release.tree.show(args.max_depth, widget=False)  # a terminal view, even when called from a notebook
    _print_counts(release.counts)
    timings = "  ".join(f"{stage} {seconds:.1f}s" for stage, seconds in clio.timings_.items())
    console.print(f"[dim]stage timings: {timings}[/dim]")
    console.print(f"Release written to [bold]{path}[/bold]")
    if args.html:
        console.print(f"HTML report written to [bold]{release.to_html(args.html)}[/bold]")
    return 0


def _unwritable(path: str, what: str) -> str | None:
    """Why ``path`` cannot be written (its folder cannot be made, or written in), or None if it can."""
    import tempfile

    folder = Path(path).parent
    if folder.exists() and not folder.is_dir():
        return f"cannot write the {what} {path}: {folder} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"cannot write the {what} {path}: {error.strerror or error} ({folder})"
    return None


def _executor(address: str | None):
    if address is None:
        return None
    from .executor import RayExecutor

    return RayExecutor(address=None if address == "local" else address)


def _print_counts(counts: dict[str, int]) -> None:
    table = Table(title="Where every conversation went")
    table.add_column("records")
    table.add_column("count", justify="right")
    for key in ("read", "released", "in_released_leaves", "suppressed", "unclustered", "rejected", "filtered_out"):
        if key not in counts:  # a differentially private release shows only noised totals; filtered_out is new
            continue
        table.add_row(key.replace("_", " "), f"{counts[key]:,}")
    console.print(table)


def _audit(release_dir: str, against: str | None) -> int:
    """Audit a saved release, print the report; 0 if it passed, 1 if it failed, 2 if it could not be read."""
    from .audit import audit

    try:
        report = audit(release_dir, against)
    except (FileNotFoundError, ValueError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        return 2
    table = Table(title=f"Audit of {escape(str(release_dir))}")
    for column in ("severity", "check", "node", "field", "detail"):
        table.add_column(column)
    for finding in report.findings:
        colour = "red" if finding.severity == "error" else "yellow"
        table.add_row(
            f"[{colour}]{finding.severity}[/{colour}]",
            finding.check,
            escape(finding.node_id or "-"),
            escape(finding.field or "-"),
            escape(finding.detail),
        )
    if report.findings:
        console.print(table)
    console.print(f"checks run: {', '.join(report.checks_run)}")
    if report.checks_skipped:
        console.print(f"[dim]checks skipped (no --against INPUT): {', '.join(report.checks_skipped)}[/dim]")
    verdict = "[green]PASSED[/green]" if report.passed else "[red]FAILED[/red]"
    console.print(f"Release audit {verdict}: {len(report.errors)} errors, {len(report.warnings)} warnings")
    return 0 if report.passed else 1


def _distill(models_dir: str | None) -> int:
    from .embed import distill_static_model

    try:
        path = distill_static_model(models_dir=models_dir)
    except (ModuleNotFoundError, OSError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        return 2
    console.print(f"Static embedding model ready in [bold]{path}[/bold]")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # clio_lite's own progress at INFO; the libraries it drives only when something is wrong.
    logging.basicConfig(
        level=logging.WARNING, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)]
    )
    logging.getLogger("clio_lite").setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    if args.command == "run":
        return _fit_and_save(args.input, args)
    if args.command == "demo":
        if not SAMPLE.is_file():
            console.print(f"[red]error:[/red] the bundled sample {SAMPLE} is missing; run from a clone of clio_lite.")
            return 2
        return _fit_and_save(SAMPLE, args)
    if args.command == "audit":
        return _audit(args.release, args.against)
    if args.command == "distill":
        return _distill(args.models_dir)
    from .release import Release

    try:
        release = Release.load(args.release)
    except (FileNotFoundError, ValueError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        return 2
    release.tree.show(args.max_depth, widget=False)  # a terminal view, even when called from a notebook
    _print_counts(release.counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
