"""``aggregator feeds``: list, add, import and export the feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click

from aggregator.cli.context import AppContext
from aggregator.cli.progress import Progress
from aggregator.errors import InputError
from aggregator.models import FeedSpec
from aggregator.opml import read_opml, write_opml

pass_ctx = click.make_pass_decorator(AppContext)


@click.group()
def feeds() -> None:
    """Manage the feeds: list, add, import-opml, export-opml."""


@feeds.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include disabled feeds.")
@pass_ctx
def list_cmd(app: AppContext, show_all: bool) -> None:
    """List feeds: id, outlet, section, URL."""
    for s in app.store.list_sources(include_disabled=show_all):
        flag = " (disabled)" if s.disabled else ""
        click.echo(f"{s.id:>4}  {s.outlet}\t{s.section}\t{s.url}{flag}")


@feeds.command("add")
@click.argument("url")
@click.option("--outlet", default="", help="Publisher name (default: the host name).")
@click.option("--section", default="", help="Section of the publisher.")
@pass_ctx
def add_cmd(app: AppContext, url: str, outlet: str, section: str) -> None:
    """Add a feed by URL; it is fetched at the next pass."""
    if not url.startswith(("http://", "https://")):
        raise InputError(f"not an http(s) URL: {url}")
    source = app.store.add_source(FeedSpec(url, outlet, section), datetime.now(UTC), origin="cli")
    click.echo(f"added feed {source.id}: {source.outlet} {source.url}")


@feeds.command("import-opml")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def import_cmd(app: AppContext, file: Path) -> None:
    """Add every feed of an OPML file (feeds already present are skipped)."""
    specs = read_opml(file.read_bytes(), source=str(file))
    existing = {s.url for s in app.store.list_sources() if not s.disabled}
    now = datetime.now(UTC)
    added = 0
    with Progress("import", "feeds") as bar:
        for spec in specs:
            bar.advance(len(specs))
            if spec.url in existing:
                continue
            app.store.add_source(spec, now, origin="opml")
            added += 1
    click.echo(f"imported {added} feeds ({len(specs) - added} already present)")


@feeds.command("export-opml")
@click.option(
    "-o", "--output", type=click.File("w", encoding="utf-8"), default="-", show_default=True
)
@pass_ctx
def export_cmd(app: AppContext, output: IO[str]) -> None:
    """Write the enabled feeds as OPML 2.0."""
    specs = [
        FeedSpec(s.url, s.outlet, s.section) for s in app.store.list_sources(include_disabled=False)
    ]
    output.write(write_opml(specs, title=app.settings.publish.title))
