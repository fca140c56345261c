"""Entry point of the ``seriatim`` command.

Subcommands live in their own modules and are imported only when invoked, so that
``seriatim serve`` does not pay for the client-side imports (and vice versa).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from seriatim.cli.options import client_options

# name -> (module, attribute, short help). Each attribute is a click command or group.
_SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("seriatim.cli.serve", "serve", "Run a Kafka-compatible broker."),
    "log": ("seriatim.cli.logtools", "log", "Inspect and verify log directories on disk."),
    "topic": ("seriatim.cli.topic", "topic",
              "Topics: create, list, describe, delete, alter-config, add-partitions."),
    "produce": ("seriatim.cli.produce", "produce",
                "Write records from stdin or a file (lines or JSON)."),
    "consume": ("seriatim.cli.consume", "consume",
                "Read records: from any offset or time, by key, as text or JSON."),
    "offsets": ("seriatim.cli.offsets", "offsets",
                "Earliest and latest offsets of a topic's partitions, or the offset at a time."),
    "cluster": ("seriatim.cli.cluster", "cluster", "Cluster id, controller, brokers, topics."),
    "db": ("seriatim.cli.db", "db", "SQLite databases rebuilt and kept in sync from a log."),
    "group": ("seriatim.cli.group", "group",
              "Consumer groups: list, describe, reset offsets, delete."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command: click.Command = getattr(module, entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SUBCOMMANDS[name][2]) for name in sorted(_SUBCOMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seriatim")
@client_options
def cli() -> None:
    """seriatim: a durable log that speaks the Kafka protocol.

    An embedded log library, a broker (`seriatim serve`), tools for the data on disk, and
    client commands (topic, produce, consume, offsets, group, cluster) that work against any
    Kafka-compatible cluster. The client options (-b, -X, --format, --timeout) may be given
    here, before the command, or after it: `seriatim -b HOST:9092 topic list` and
    `seriatim topic list -b HOST:9092` are the same.
    """


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="seriatim")


if __name__ == "__main__":  # pragma: no cover
    main()
