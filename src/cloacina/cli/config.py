"""``cloacina config show``: the effective settings, and where each came from."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from cloacina.cli.consoles import out_console
from cloacina.cli.databases import display_url, is_postgres
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import (
    DB_ENV,
    TENANT_ENV,
    db_option,
    resolve_db,
    resolve_settings,
    resolve_tenant,
    settings_options,
    tenant_option,
)
from cloacina.cli.render import new_table, shrink_to_fit
from cloacina.settings import Settings, env_var, option_flag, setting_names, spec

#: The narrowest the value column gets by cutting the database URL, at 80 columns.
URL_FLOOR = 32


@click.group("config")
def config_group() -> None:
    """Inspect the settings runners and workers use."""


def _group_source(ctx: click.Context, name: str, env: str) -> str:
    """Where the ``cloacina`` group's ``--db``/``--tenant`` value came from."""
    source = ctx.find_root().get_parameter_source(name)
    if source == click.core.ParameterSource.COMMANDLINE:
        return f"option --{name}"
    if source == click.core.ParameterSource.ENVIRONMENT:
        return f"env {env}"
    return "default"


def settings_json(settings: Settings, backend: str) -> dict[str, Any]:
    return {
        name: {
            "value": getattr(settings, name),
            "display": settings.display(name),
            "unit": spec(name).unit,
            "source": settings.sources[name],
            "env": env_var(name),
            "option": option_flag(name),
            "used": spec(name).backend in (None, backend),
            "help": spec(name).help,
        }
        for name in setting_names()
    }


@config_group.command("show")
@db_option
@tenant_option
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.pass_context
def show_command(ctx: click.Context, db: str | None, tenant: str | None, as_json: bool) -> None:
    """Print the effective settings and where each came from: an option given here (the
    same options as `cloacina worker` and `cloacina run`), a CLOACINA_* variable, or the
    default. Settings of the other backend than --db's are shown dimmed: unused."""
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    db_source = "option --db" if db else _group_source(ctx, "db", DB_ENV)
    tenant_source = "option --tenant" if tenant else _group_source(ctx, "tenant", TENANT_ENV)
    settings = resolve_settings(ctx)
    backend = "PostgreSQL" if is_postgres(url) else "SQLite"
    if as_json:
        echo_json(
            {
                "database": {"value": display_url(url), "source": db_source, "backend": backend},
                "tenant": {"value": tenant_name, "source": tenant_source},
                "settings": settings_json(settings, backend),
            }
        )
        return
    names = setting_names()
    table = new_table("Settings")
    # At 80 columns the setting names stay whole, the sources fold, and only the database
    # URL gives way (cut with an ellipsis); the tenant, a name, folds if it must.
    table.add_column("setting", no_wrap=True, min_width=max(len(n) for n in names))
    table.add_column("value", overflow="fold")
    table.add_column("from", overflow="fold")
    table.add_row("database", Text(display_url(url)), db_source)
    table.add_row("tenant", Text(tenant_name, no_wrap=False, overflow="fold"), tenant_source)
    for name in names:
        used = spec(name).backend in (None, backend)
        style = "" if used else "dim"
        source = settings.sources[name] + ("" if used else f" (unused on {backend})")
        table.add_row(
            Text(name, style=style),
            Text(settings.display(name), style=style),
            Text(source, style=style),
        )
    console = out_console()
    shrink_to_fit(console, table, {"value": URL_FLOOR})
    console.print(table)
    console.print(
        "Set one with its option (`cloacina worker --help`) or its variable, e.g. "
        "CLOACINA_POLL_INTERVAL=200ms; an option wins over a variable.",
        style="dim",
        highlight=False,
    )
