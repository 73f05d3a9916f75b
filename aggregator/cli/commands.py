"""Top-level commands: run, fetch, cluster, prune, serve, status, cluster-file."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click

from aggregator import __version__
from aggregator.cli.context import AppContext
from aggregator.cli.feeds import feeds
from aggregator.cli.lifecycle import SHUTDOWN_GRACE_SECONDS, OneShotStop, abandon
from aggregator.cli.progress import Progress
from aggregator.cli.users import users
from aggregator.errors import InputError, LockedError
from aggregator.locks import FileLock, command_lock, daemon_lock, is_sqlite
from aggregator.store import Store

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

    Feeds are fetched when due, stories regrouped when new articles arrive, old ones
    pruned ([retention]), and feeds served on [server] host:port. One daemon per SQLite
    database (a second one exits with a message). Ctrl-C or SIGTERM stops it within seconds.
    """
    from aggregator.scheduler import DaemonState, build_scheduler
    from aggregator.web import create_app
    from aggregator.web.server import serve, wait_for_stop

    settings = app.settings
    if is_sqlite(settings):  # held until the process ends; PostgreSQL shares roles instead
        daemon_lock(settings).acquire()
    store = app.store
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
                create_app(settings, store, probe=state.health),
                settings.server.host,
                settings.server.port,
                state.stop,
                settings.log.level,
            )
        else:
            wait_for_stop(state.stop)
    finally:
        state.stop.set()
        scheduler.shutdown(wait=False)
        if not state.wait_idle(SHUTDOWN_GRACE_SECONDS):
            abandon(
                "stopped (in-flight fetches abandoned: still due, fetched next time)",
                0,
                cleanup=lambda: _give_back(store, state.worker),
            )
    click.echo("aggregator: stopped", err=True)


WAIT_OPTION = click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="When another run holds the lock, wait this long for it; then exit 0 doing nothing.",
)


def _give_back(store: Store, worker: str) -> None:
    """Before exiting with work abandoned: the feeds and the clustering role ``worker``
    holds go back at once (other workers would otherwise wait for the leases to expire)."""
    from aggregator.pipeline import CLUSTER_LOCK

    store.release_leases(worker)
    store.release_lock(CLUSTER_LOCK, worker)


def _take(lock: FileLock, wait: float) -> bool:
    """Cron overlap: when another run holds ``lock``, say so and succeed doing nothing."""
    try:
        lock.acquire(wait)
    except LockedError as e:
        click.echo(f"aggregator: {e}: nothing done", err=True)
        return False
    return True


@cli.command()
@click.option("--all", "all_sources", is_flag=True, help="Fetch every feed, due or not.")
@WAIT_OPTION
@pass_ctx
def fetch(app: AppContext, all_sources: bool, wait: float) -> None:
    """Fetch due feeds once and store new entries (for cron).

    Exits 0 even when some feeds fail (their errors are recorded and shown by `status`);
    1 only when the command itself fails. Overlapping runs never fetch twice: while
    another fetch pass (cron or daemon) holds the lock, this one exits 0 doing nothing.
    SIGTERM stops it within seconds (exit 143; Ctrl-C 130); unfinished feeds stay due.
    """
    from aggregator.pipeline import refresh_due, worker_id

    if not _take(command_lock(app.settings, "fetch"), wait):
        return
    owner = worker_id()
    stop = OneShotStop("fetch", cleanup=lambda: _give_back(app.store, owner)).install()
    with Progress("fetch", "feeds") as bar:
        report = refresh_due(
            app.settings,
            app.store,
            all_sources=all_sources,
            stop=stop.event,
            progress=lambda total, _: bar.advance(total),
            worker=owner,
            only_fetcher=is_sqlite(app.settings),  # SQLite: the fetch lock is ours
        )
    stop.finished.set()
    for o in report.errors:
        click.echo(f"error: {o.url}: {o.error}", err=True)
    click.echo(
        f"fetched {len(report.outcomes)} feeds: {report.new_entries} new entries, "
        f"{len(report.errors)} errors"
    )
    if stop.event.is_set():
        click.echo("aggregator: fetch interrupted; the other feeds stay due", err=True)
        sys.exit(stop.exit_code)


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
@WAIT_OPTION
@pass_ctx
def cluster(app: AppContext, at: datetime | None, full: bool | None, wait: float) -> None:
    """Group new articles into stories and topics ([cluster] window_hours), once.

    While another clustering run (cron or daemon) holds the lock, exits 0 doing nothing.
    """
    from aggregator.pipeline import CLUSTER_LOCK, clustering_role, recluster, worker_id

    if not _take(command_lock(app.settings, "cluster"), wait):
        return
    now = at.replace(tzinfo=UTC) if at is not None else datetime.now(UTC)
    # The clustering role in the database too: on PostgreSQL a daemon elsewhere may hold it.
    with clustering_role(app.store, worker_id()) as held:
        if not held:
            holder = app.store.lock_holder(CLUSTER_LOCK)
            click.echo(f"aggregator: {holder} holds the cluster role: nothing done", err=True)
            return
        report = recluster(app.settings, app.store, now, full=full)
    click.echo(
        f"{'rebuilt' if report.full else 'placed new articles'}: {report.articles} articles "
        f"in {report.stories} stories, {report.topics} topics "
        f"({report.created} new, {report.changed} changed, {report.deleted} removed)"
    )


@cli.command()
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="Prune what is older than DAYS instead of [retention] max_age_days.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be pruned; delete nothing.")
@WAIT_OPTION
@pass_ctx
def prune(app: AppContext, days: float | None, dry_run: bool, wait: float) -> None:
    """Delete stories and entries older than [retention] max_age_days (for cron).

    Pinned and locked stories and their articles are kept, and so are articles a feed
    still carries; topics left empty and old fetch-log rows go too. The daemon does the
    same every [retention] interval_hours.
    """
    from aggregator.pipeline import prune as prune_old

    settings = app.settings
    if not dry_run and not _take(command_lock(settings, "cluster"), wait):
        return
    report = prune_old(settings, app.store, datetime.now(UTC), max_age_days=days, dry_run=dry_run)
    if report is None:
        click.echo("retention is off ([retention] max_age_days = 0): nothing pruned")
        return
    limit = days if days is not None else settings.retention.max_age_days
    verb = "would prune" if dry_run else "pruned"
    topics = "" if dry_run else f", {report.topics} topics"
    click.echo(
        f"{verb} {report.stories} stories, {report.entries} entries{topics}, "
        f"{report.fetch_log} fetch-log rows older than {limit:g} days"
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
    figures = store.ops_figures(datetime.now(UTC))
    age = figures.last_success_age
    click.echo(
        f"last successful fetch: {f'{_duration(age)} ago' if age is not None else 'never'}; "
        f"most overdue feed waiting for: {_duration(figures.queue_lag)}"
    )
    if failing:
        # Failing (many errors in a row) first, then by how long the errors have lasted.
        failing.sort(key=lambda s: (not s.failing, -s.error_count, s.id))
        click.echo("")
        click.echo(f"feeds with errors ({len(failing)}):")
        for s in failing:
            name = f"{s.outlet} / {s.section}" if s.section else s.outlet
            label = "FAILING" if s.failing else "error"
            click.echo(f"  {s.id:>4}  {name}: {label}, {s.error_count}x: {s.last_error}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


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
