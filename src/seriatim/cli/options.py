"""The options every client command shares: where the cluster is, and how to talk to it.

``-b/--bootstrap-server``, ``-X key=value``, ``--format text|json`` and ``--timeout`` are
accepted both before the subcommand (``seriatim -b HOST topic list``, options of the top-level
group) and after it (``seriatim topic list -b HOST``, added to each client command by
:func:`client_options`). Both places write into one :class:`ClientOptions` object, the
context's ``obj``, which click hands down from the group to every subcommand; the values given
after the subcommand are parsed later and so win, and ``-X`` pairs accumulate in order.
A command reads the merged result with :func:`get_settings`, which fills in the defaults
(``$SERIATIM_BOOTSTRAP``, else ``127.0.0.1:9092``).

This module is imported by ``seriatim.cli.main``, so it imports nothing but click: the Kafka
client and rich are imported by the commands that use them, when they run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
BOOTSTRAP_ENV = "SERIATIM_BOOTSTRAP"
DEFAULT_TIMEOUT_S = 5.0
FORMATS = ("text", "json")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class ClientOptions:
    """What the user typed, before defaults (None = not given)."""

    bootstrap: str | None = None
    overrides: list[tuple[str, str]] = field(default_factory=list)
    format: str | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class Settings:
    """The resolved connection settings a client command uses."""

    bootstrap: str
    overrides: tuple[tuple[str, str], ...]
    format: str
    timeout_s: float

    @property
    def json(self) -> bool:
        return self.format == "json"

    def client_config(self, **base: Any) -> dict[str, Any]:
        """librdkafka config: ``base`` < ``bootstrap.servers`` < every ``-X`` pair."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        config.update(base)
        for key, value in self.overrides:
            config[key] = value
        return config


def parse_key_value(text: str, what: str = "KEY=VALUE") -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected {what}, got {text!r}")
    return key.strip(), value


def _options(ctx: click.Context) -> ClientOptions:
    obj = ctx.find_object(ClientOptions)
    if obj is None:
        obj = ClientOptions()
        root = ctx.find_root()
        if root.obj is None:
            root.obj = obj
        ctx.obj = obj
    return obj


def _store_bootstrap(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _options(ctx).bootstrap = value


def _store_overrides(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> None:
    opts = _options(ctx)
    for item in value:
        opts.overrides.append(parse_key_value(item))


def _store_format(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _options(ctx).format = value.lower()


def _store_timeout(ctx: click.Context, _param: click.Parameter, value: float | None) -> None:
    if value is not None:
        _options(ctx).timeout_s = value


def client_options(f: F) -> F:
    """Add -b, -X, --format and --timeout to a command (or group). They store into the shared
    :class:`ClientOptions` instead of becoming parameters: read them with :func:`get_settings`."""
    decorators = [
        click.option(
            "-b",
            "--bootstrap-server",
            "bootstrap_server",
            metavar="HOST:PORT[,...]",
            expose_value=False,
            callback=_store_bootstrap,
            help=f"Brokers to bootstrap from (default: ${BOOTSTRAP_ENV}, else "
            f"{DEFAULT_BOOTSTRAP}).",
        ),
        click.option(
            "-X",
            "client_overrides",
            metavar="KEY=VALUE",
            multiple=True,
            expose_value=False,
            callback=_store_overrides,
            help="Set any librdkafka client property, e.g. -X security.protocol=SSL. Repeatable.",
        ),
        click.option(
            "--format",
            "output_format",
            type=click.Choice(FORMATS, case_sensitive=False),
            expose_value=False,
            callback=_store_format,
            help="Output (and for produce, input) format. [default: text]",
        ),
        click.option(
            "--timeout",
            "timeout_s",
            type=click.FloatRange(min=0.1),
            metavar="SECONDS",
            expose_value=False,
            callback=_store_timeout,
            help=f"How long to wait for the cluster to answer. [default: {DEFAULT_TIMEOUT_S:g}]",
        ),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def get_settings(ctx: click.Context | None = None) -> Settings:
    ctx = ctx or click.get_current_context()
    opts = _options(ctx)
    bootstrap = opts.bootstrap or os.environ.get(BOOTSTRAP_ENV) or DEFAULT_BOOTSTRAP
    return Settings(
        bootstrap=bootstrap,
        overrides=tuple(opts.overrides),
        format=opts.format or "text",
        timeout_s=opts.timeout_s if opts.timeout_s is not None else DEFAULT_TIMEOUT_S,
    )
