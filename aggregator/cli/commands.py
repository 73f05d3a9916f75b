"""Top-level commands: run, fetch, cluster, serve, status, cluster-file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click

from aggregator import __version__
from aggregator.cli.context import AppContext
from aggregator.cli.feeds import feeds
from aggregator.cli.users import users
from aggregator.errors import InputError

pass_ctx = click.make_pass_decorator(AppContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="AGGREGATOR_CONFIG",
    help="Configuration file (TOML); defaults to the bundled config. Env: AGGREGATOR_CONFIG.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Override [log] level.",
)
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, log_level: str | None) -> None:
    """French news feed aggregator: fetch feeds, group articles into stories, serve feeds."""
    app = AppContext(config_file=config_file, log_level=log_level)
    ctx.obj = app
    ctx.call_on_close(app.close)


cli.add_command(feeds)
cli.add_command(users)


@cli.command()
@click.option(
    "--role",
    type=click.Choice(["all", "fetch", "cluster", "web"]),
    default="all",
    show_default=True,
    help="What this process does: everything, or one part (to spread work over processes).",
)
@pass_ctx
def run(app: AppContext, role: str) -> None:
    """Run the daemon: scheduled fetching and clustering, and the HTTP server.

    Feeds are fetched when due, stories regrouped when new articles arrive, and feeds
    served on [server] host:port. Ctrl-C or SIGTERM stops it cleanly.
    """
    from aggregator.scheduler import DaemonState, build_scheduler
    from aggregator.web import create_app
    from aggregator.web.server import serve, wait_for_stop

    settings, store = app.settings, app.store
    state = DaemonState()
    scheduler = build_scheduler(
        settings, store, state, fetch=role in ("all", "fetch"), cluster=role in ("all", "cluster")
    )
    scheduler.start()
    click.echo(
        f"aggregator {__version__}: role {role}, database {_safe_url(settings.database.url)}",
        err=True,
    )
    try:
        if role in ("all", "web"):
            click.echo(f"serving on {settings.server.base_url}/", err=True)
            serve(
                create_app(settings, store),
                settings.server.host,
                settings.server.port,
                state.stop,
                settings.log.level,
            )
        else:
            wait_for_stop(state.stop)
    finally:
        state.stop.set()
        scheduler.shutdown(wait=True)
    click.echo("aggregator: stopped", err=True)


@cli.command()
@click.option("--all", "all_sources", is_flag=True, help="Fetch every feed, due or not.")
@pass_ctx
def fetch(app: AppContext, all_sources: bool) -> None:
    """Fetch due feeds once and store new entries (for cron).

    Exits 0 even when some feeds fail (their errors are recorded and shown by `status`);
    non-zero only when the command itself fails.
    """
    from aggregator.pipeline import refresh_due

    report = refresh_due(app.settings, app.store, all_sources=all_sources)
    for o in report.errors:
        click.echo(f"error: {o.url}: {o.error}", err=True)
    click.echo(
        f"fetched {len(report.outcomes)} feeds: {report.new_entries} new entries, "
        f"{len(report.errors)} errors"
    )


@cli.command()
@click.option(
    "--at",
    "at",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]),
    help="Cluster the window ending at this UTC time instead of now (replaying saved feeds).",
)
@click.option(
    "--full/--incremental",
    "full",
    default=None,
    help="Regroup the whole story window, or only place new articles. Default: full when "
    "[cluster] rebuild_interval_hours has passed since the last full run.",
)
@pass_ctx
def cluster(app: AppContext, at: datetime | None, full: bool | None) -> None:
    """Group new articles into stories and topics ([cluster] window_hours), once."""
    from aggregator.pipeline import recluster

    now = at.replace(tzinfo=UTC) if at is not None else datetime.now(UTC)
    report = recluster(app.settings, app.store, now, full=full)
    click.echo(
        f"{'rebuilt' if report.full else 'placed new articles'}: {report.articles} articles "
        f"in {report.stories} stories, {report.topics} topics "
        f"({report.created} new, {report.changed} changed, {report.deleted} removed)"
    )


@cli.command()
@pass_ctx
def serve(app: AppContext) -> None:
    """Serve the feeds and pages over HTTP only (no fetching, no clustering)."""
    import threading

    from aggregator.web import create_app
    from aggregator.web.server import serve as serve_http

    settings = app.settings
    click.echo(f"serving on {settings.server.base_url}/", err=True)
    serve_http(
        create_app(settings, app.store),
        settings.server.host,
        settings.server.port,
        threading.Event(),
        settings.log.level,
    )


@cli.command()
@pass_ctx
def status(app: AppContext) -> None:
    """Show feeds with their last fetch result, and entry and story counts."""
    store = app.store
    sources = store.list_sources()
    for s in sources:
        if s.disabled:
            state = f"disabled: {s.disabled_reason or ''}"
        elif s.last_error:
            label = "FAILING" if s.failing else "error"
            state = f"{label} ({s.error_count}x): {s.last_error}"
        elif s.last_fetched_at is None:
            state = "never fetched"
        else:
            state = f"ok (HTTP {s.last_status})"
        last = s.last_fetched_at.strftime("%Y-%m-%d %H:%M") if s.last_fetched_at else "-"
        name = f"{s.outlet} / {s.section}" if s.section else s.outlet
        click.echo(f"{s.id:>4}  {name[:40]:<40}  {last:<16}  {s.entry_count:>5}  {state}")
        click.echo(f"      {s.url}")
    enabled = [s for s in sources if not s.disabled]
    failing = [s for s in enabled if s.last_error]
    click.echo("")
    click.echo(
        f"feeds: {len(enabled)} enabled, {len(failing)} with errors, "
        f"{len(sources) - len(enabled)} disabled"
    )
    click.echo(f"entries: {store.count_entries()}")
    click.echo(
        f"stories: {store.count_stories()} ({store.count_stories(min_outlets=2)} from 2+ outlets)"
    )


@cli.command("cluster-file")
@click.argument("infile", type=click.File("r", encoding="utf-8"))
@click.option(
    "-o", "--output", "outfile", type=click.File("w", encoding="utf-8"), default="-",
    show_default=True, help="Where to write the JSONL result.",
)  # fmt: skip
@pass_ctx
def cluster_file_cmd(app: AppContext, infile: IO[str], outfile: IO[str]) -> None:
    """Cluster a JSONL file of articles, without any database.

    Input lines: {"id", "title", "summary"?, "published"? (ISO 8601), "source"?}.
    Output lines: {"id", "story", "story_label", "topic", "topic_label"} (topic may be
    null). Same code and defaults as the daemon.
    """
    from aggregator.pipeline import cluster_file

    try:
        clusters = cluster_file(app.settings, infile, outfile)
    except InputError as e:
        raise InputError(f"{getattr(infile, 'name', 'input')}: {e}") from e
    n = sum(len(c.article_ids) for c in clusters)
    click.echo(f"clustered {n} articles into {len(clusters)} stories", err=True)


def _safe_url(url: str) -> str:
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<invalid>"


__all__ = ["cli"]
