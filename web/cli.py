"""Operator commands under `flask --app web`: API tokens (create, list, revoke).

They need `REDIS_URL` (the Redis the web processes use); `SECRET_KEY` is not needed here.
"""

from datetime import UTC, datetime

import click
from flask import Flask
from flask.cli import AppGroup

from jobs.registry import CATALOG
from web import tokens
from web.extensions import get_redis

tokens_cli = AppGroup("tokens", help="API tokens: create, list, revoke.")


@tokens_cli.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="start:<job name>, start:* or cancel:any; repeat for several.",
)
def create_token(name: str, scopes: tuple[str, ...]) -> None:
    """Create a token NAME; prints its secret, once, alone on the last line."""
    try:
        granted = tokens.check_scopes(scopes, CATALOG)
        secret = tokens.create(get_redis(), name, granted)
    except tokens.BadToken as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Token {name!r} created with scopes: {' '.join(sorted(granted))}.")
    click.echo(
        "Clients send 'Authorization: Bearer <token>'. Only its SHA-256 is kept: this is the one copy."
    )
    click.echo(secret)


@tokens_cli.command("list")
def list_tokens() -> None:
    """List tokens: name, scopes, created, last used (never a secret)."""
    rows = [("NAME", "SCOPES", "CREATED", "LAST USED")]
    for token in tokens.all_tokens(get_redis()):
        scopes = " ".join(sorted(token.scopes))
        rows.append((token.name, scopes, _when(token.created_at), _when(token.last_used_at)))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        click.echo(
            "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]])
        )


@tokens_cli.command("revoke")
@click.argument("name")
def revoke_token(name: str) -> None:
    """Revoke the token NAME: every web process refuses it from the next request on."""
    if not tokens.revoke(get_redis(), name):
        raise click.ClickException(f"no token named {name!r}")
    click.echo(f"Token {name!r} revoked.")


def init_app(app: Flask) -> None:
    """Add the commands to `flask --app web`."""
    app.cli.add_command(tokens_cli)


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
