"""``aggregator users``: the editors' accounts for the desk (/desk). Only an operator
creates them; passwords are prompted (or read from stdin for scripts), never arguments.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from aggregator.cli.context import AppContext
from aggregator.errors import InputError

pass_ctx = click.make_pass_decorator(AppContext)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise InputError("no password on stdin")
        return line.rstrip("\r\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@click.group()
def users() -> None:
    """Manage the editors' desk accounts: add, list, passwd, disable, enable."""


@users.command("add")
@click.argument("name")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@pass_ctx
def add_cmd(app: AppContext, name: str, password_stdin: bool) -> None:
    """Create an editor account NAME; the password is prompted twice (8 characters or more)."""
    from aggregator.store.desk.accounts import check_name

    check_name(name)
    user = app.store.add_user(name, _read_password(password_stdin), datetime.now(UTC))
    click.echo(f"added user {user.name}: sign in at {app.settings.server.base_url}/desk")


@users.command("list")
@pass_ctx
def list_cmd(app: AppContext) -> None:
    """List accounts: name, state, last sign-in."""
    for user in app.store.list_users():
        state = "disabled" if user.disabled else "active"
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        click.echo(f"{user.name}\t{state}\tlast sign-in: {last}")


@users.command("passwd")
@click.argument("name")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@pass_ctx
def passwd_cmd(app: AppContext, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME and sign out all of its sessions."""
    app.store.set_user_password(name, _read_password(password_stdin), datetime.now(UTC))
    click.echo(f"password changed for {name}; its sessions are closed")


@users.command("disable")
@click.argument("name")
@pass_ctx
def disable_cmd(app: AppContext, name: str) -> None:
    """Forbid NAME to sign in and close its sessions (its decisions stay in the history)."""
    app.store.set_user_disabled(name, True, datetime.now(UTC))
    click.echo(f"disabled {name}")


@users.command("enable")
@click.argument("name")
@pass_ctx
def enable_cmd(app: AppContext, name: str) -> None:
    """Allow a disabled account to sign in again."""
    app.store.set_user_disabled(name, False, datetime.now(UTC))
    click.echo(f"enabled {name}")
