"""``seriatim serve``: run a Kafka-compatible broker in the foreground.

Configuration, in increasing precedence: Kafka's defaults, ``-f server.properties``,
``SERIATIM_*`` environment variables, ``-c key=value`` flags (see
:mod:`seriatim.config`). SIGTERM or Ctrl-C stops gracefully; a second one exits at once.

Startup time matters (a test suite or a laptop starts the broker often), so this module imports
only click and the config at load time; the server, the event loop and the broker are imported
inside :func:`serve`, and nothing here imports rich.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from seriatim.config import BrokerConfig
    from seriatim.server.app import AppFactory, BrokerApp, Server


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-f",
    "--config-file",
    type=click.Path(exists=True, dir_okay=False),
    help="A Kafka server.properties-style file (key=value lines, # comments).",
)
@click.option(
    "-c",
    "--config",
    "flags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a config key, e.g. -c listeners=PLAINTEXT://0.0.0.0:9092 "
    "-c advertised.listeners=PLAINTEXT://myhost:9092 -c log.dirs=/var/lib/seriatim. "
    "Repeatable; overrides the file and SERIATIM_* variables.",
)
@click.option(
    "--log-level",
    default="INFO",
    envvar="SERIATIM_LOG_LEVEL",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--app",
    "app_spec",
    default=None,
    hidden=True,
    help="module:callable(config, clock) -> BrokerApp; for testing the server layer.",
)
def serve(
    config_file: str | None, flags: tuple[str, ...], log_level: str, app_spec: str | None
) -> None:
    """Run a Kafka-compatible broker (PLAINTEXT, one node).

    Keys are Kafka's (listeners, advertised.listeners, log.dirs, num.partitions,
    log.retention.hours, ...). Precedence: defaults < -f FILE < SERIATIM_* environment
    variables (SERIATIM_LOG_DIRS sets log.dirs) < -c KEY=VALUE.

    Durability: log.flush.policy=always (the default) acknowledges a produce request only
    after fsync, with one fsync shared by all pending requests (group commit); 'interval'
    and 'never' trade that for speed, as Kafka does by default.
    """
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from seriatim.config import BrokerConfig
    from seriatim.errors import InvalidConfigError

    try:
        config = BrokerConfig.load(config_file=config_file, flags=flags)
    except InvalidConfigError as exc:
        raise click.UsageError(str(exc)) from None

    # kio registers hypothesis strategies for its types whenever hypothesis is importable,
    # which costs ~100 ms of startup in any environment with the test extras installed. No
    # broker code uses hypothesis, so this process marks it absent (kio catches the
    # ImportError), making a dev install start as fast as a production one.
    sys.modules.setdefault("hypothesis", None)  # type: ignore[arg-type]

    from seriatim.server.app import run

    try:
        run(config, _app_factory(app_spec), on_ready=_print_banner)
    except OSError as exc:  # typically: the port is taken
        raise click.ClickException(f"cannot serve {_listeners(config)}: {exc}") from None


def _app_factory(spec: str | None) -> AppFactory:
    from seriatim.clock import SYSTEM_CLOCK
    from seriatim.server.app import broker_app_factory

    if spec is None:
        return broker_app_factory(SYSTEM_CLOCK)
    module_name, _, attr = spec.partition(":")

    def factory(config: BrokerConfig) -> BrokerApp:
        # Imported here, after the event loop exists, but before listening.
        create_app = getattr(importlib.import_module(module_name), attr or "create_app")
        app: BrokerApp = create_app(config, SYSTEM_CLOCK)
        return app

    return factory


def _listeners(config: BrokerConfig) -> str:
    return ", ".join(str(lis) for lis in config.listeners)


def _print_banner(server: Server) -> None:
    from seriatim import __version__

    config = server.config
    bootstrap = server.bootstrap
    click.echo(
        f"seriatim {__version__} (node {config.node_id}) listening on {_listeners(config)}; "
        f"data in {config.log_dir}\n"
        f"  bootstrap servers: {bootstrap}\n"
        f"  try:  kcat -b {bootstrap} -L\n"
        f'        python -c "from confluent_kafka import Producer; '
        f"p = Producer({{'bootstrap.servers': '{bootstrap}'}}); "
        f"p.produce('hello', b'world'); p.flush()\"\n"
        f"  stop: Ctrl-C or SIGTERM"
    )
    sys.stdout.flush()
