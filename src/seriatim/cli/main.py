"""Entry point of the ``seriatim`` command.

Subcommands live in their own modules and are imported only when invoked, so that
``seriatim serve`` does not pay for the client-side imports (and vice versa).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> (module, attribute, short help). Each attribute is a click command or group.
_SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("seriatim.cli.serve", "serve", "Run a Kafka-compatible broker."),
    "log": ("seriatim.cli.logtools", "log", "Inspect and verify log directories on disk."),
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
def cli() -> None:
    """seriatim: a durable log that speaks the Kafka protocol.

    An embedded log library, a broker (`seriatim serve`), and tools for the data on disk.
    """


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="seriatim")


if __name__ == "__main__":  # pragma: no cover
    main()
