"""The command line: ``clio-lite run INPUT --out DIR``, ``clio-lite demo``, ``clio-lite show DIR``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
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
    return parser


def _add_fit_options(parser: argparse.ArgumentParser, default_out: str | None) -> None:
    parser.add_argument("--out", required=default_out is None, default=default_out, help="release directory")
    parser.add_argument("--min-users", type=int, default=25, help="distinct users a cluster needs (default 25)")
    parser.add_argument("--min-conversations", type=int, default=50, help="conversations a cluster needs")
    parser.add_argument("--random-state", type=int, default=0, help="seed for every stochastic stage")
    parser.add_argument("--max-depth", type=int, default=None, help="levels of the tree to print")
    parser.add_argument("--no-cache", action="store_true", help="do not cache embeddings on disk")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _fit_and_save(input_path: str | Path, args: argparse.Namespace) -> int:
    from .pipeline import Clio

    clio = Clio(
        min_users=args.min_users,
        min_conversations=args.min_conversations,
        random_state=args.random_state,
        cache_dir=False if args.no_cache else None,
        verbose=not args.quiet,
    )
    try:
        clio.fit(input_path)
    except (FileNotFoundError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    release = clio.release_
    path = release.save(args.out, overwrite=True)
    release.tree.show(args.max_depth)
    _print_counts(release.counts)
    timings = "  ".join(f"{stage} {seconds:.1f}s" for stage, seconds in clio.timings_.items())
    console.print(f"[dim]stage timings: {timings}[/dim]")
    console.print(f"Release written to [bold]{path}[/bold]")
    return 0


def _print_counts(counts: dict[str, int]) -> None:
    table = Table(title="Where every conversation went")
    table.add_column("records")
    table.add_column("count", justify="right")
    for key in ("read", "released", "in_released_leaves", "suppressed", "unclustered", "rejected"):
        table.add_row(key.replace("_", " "), f"{counts[key]:,}")
    console.print(table)


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
    from .release import Release

    release = Release.load(args.release)
    release.tree.show(args.max_depth)
    _print_counts(release.counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
