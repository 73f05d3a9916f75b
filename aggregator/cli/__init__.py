"""The ``aggregator`` command: the composition root that wires settings, store, pipeline,
scheduler and web app. Errors we raise on purpose become one line and a non-zero exit.
"""

from __future__ import annotations

import sys

import click

from aggregator.cli.commands import cli
from aggregator.errors import AggregatorError, InputError, LockedError

# Exit codes: 0 ok, 1 a command failed, 2 usage error (click), 3 locked by another process.
EXIT_FAILURE = 1
EXIT_LOCKED = 3


def one_line(error: Exception) -> str:
    """Drivers' messages may span lines (psycopg adds hints): a command error is one line."""
    return " ".join(str(error).split())


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="aggregator", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aggregator: aborted", err=True)
        sys.exit(EXIT_FAILURE)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except LockedError as e:
        click.echo(f"aggregator: {one_line(e)}", err=True)
        sys.exit(EXIT_LOCKED)
    except (AggregatorError, InputError) as e:
        click.echo(f"aggregator: error: {one_line(e)}", err=True)
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        click.echo("aggregator: interrupted", err=True)
        sys.exit(130)


__all__ = ["cli", "main"]
