"""The client commands' shared options, their errors and exit codes, and startup hygiene:
-b/-X/--format/--timeout before or after the subcommand, an unreachable broker, lazy imports."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from seriatim.cli.main import cli
from seriatim.cli.options import DEFAULT_BOOTSTRAP, client_options, get_settings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def settings_of(args: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    """Run a probe command registered on a group shaped like the real one."""
    seen: dict[str, object] = {}

    @click.group()
    @client_options
    def root() -> None:
        pass

    @root.group()
    @client_options
    def sub() -> None:
        pass

    @sub.command()
    @client_options
    def probe() -> None:
        s = get_settings()
        seen.update(bootstrap=s.bootstrap, overrides=s.overrides, format=s.format,
                    timeout=s.timeout_s, config=s.client_config(**{"acks": "1"}))

    result = CliRunner().invoke(root, args, env=env or {"SERIATIM_BOOTSTRAP": ""})
    assert result.exit_code == 0, result.output
    return seen


def test_options_before_and_after_the_command_merge() -> None:
    assert settings_of(["sub", "probe"])["bootstrap"] == DEFAULT_BOOTSTRAP
    assert settings_of(["-b", "h1:1", "sub", "probe"])["bootstrap"] == "h1:1"
    assert settings_of(["sub", "probe", "-b", "h2:2"])["bootstrap"] == "h2:2"
    assert settings_of(["sub", "-b", "h3:3", "probe"])["bootstrap"] == "h3:3"
    assert settings_of(["-b", "h1:1", "sub", "probe", "-b", "h2:2"])["bootstrap"] == "h2:2"
    assert settings_of(["sub", "probe"], env={"SERIATIM_BOOTSTRAP": "env:9"})["bootstrap"] \
        == "env:9"
    assert settings_of(["-b", "flag:1", "sub", "probe"],
                       env={"SERIATIM_BOOTSTRAP": "env:9"})["bootstrap"] == "flag:1"
    seen = settings_of(["-X", "acks=all", "--format", "JSON", "sub", "probe", "-X",
                        "linger.ms=5", "--timeout", "2.5", "-X", "acks=0"])
    assert seen["overrides"] == (("acks", "all"), ("linger.ms", "5"), ("acks", "0"))
    assert seen["format"] == "json" and seen["timeout"] == 2.5
    assert seen["config"] == {"bootstrap.servers": DEFAULT_BOOTSTRAP, "acks": "0",
                              "linger.ms": "5"}


def test_bad_options_are_usage_errors() -> None:
    runner = CliRunner()
    for args in (["-X", "novalue", "topic", "list"], ["topic", "list", "--format", "yaml"],
                 ["topic", "list", "--timeout", "0"], ["consume"], ["topic", "nope"],
                 ["produce", "t", "--acks", "2"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)


@pytest.mark.parametrize("args", [
    ["topic", "list"], ["topic", "describe", "t"], ["topic", "create", "t"],
    ["produce", "t"], ["consume", "t"], ["offsets", "t"], ["cluster", "info"],
])
def test_unreachable_broker_names_the_address_quickly(closed_port: int,
                                                      args: list[str]) -> None:
    address = f"127.0.0.1:{closed_port}"
    started = time.monotonic()
    result = CliRunner().invoke(cli, [*args, "-b", address], input=b"x\n")
    assert time.monotonic() - started < 3  # refused: no need to wait for the timeout
    assert result.exit_code == 1
    assert f"cannot reach a Kafka broker at {address}" in result.output
    assert "Connection refused" in result.output
    assert "seriatim serve" in result.output and "make run" in result.output


def test_a_silent_address_fails_after_the_timeout(silent_port: int) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["--timeout", "0.5", "-b", f"127.0.0.1:{silent_port}",
                                      "topic", "list"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert "no answer within 0.5 s" in result.output
    assert 0.4 < elapsed < 3


def test_as_a_process_exit_codes_and_lazy_imports(closed_port: int) -> None:
    down = subprocess.run([sys.executable, "-m", "seriatim.cli.main", "topic", "list", "-b",
                           f"127.0.0.1:{closed_port}"], capture_output=True, text=True, check=False,
                          timeout=30)
    assert down.returncode == 1 and "seriatim serve" in down.stderr and not down.stdout
    assert "%3|" not in down.stderr  # librdkafka's own log lines stay quiet
    usage = subprocess.run([sys.executable, "-m", "seriatim.cli.main", "consume"],
                           capture_output=True, text=True, timeout=30, check=False)
    assert usage.returncode == 2
    # Building every command (what --help does) imports neither the Kafka client nor rich.
    probe = (
        "import sys\n"
        "from seriatim.cli.main import cli, _SUBCOMMANDS\n"
        "for name in _SUBCOMMANDS:\n"
        "    if name != 'group':\n"
        "        cli.get_command(None, name)\n"
        "heavy = [m for m in ('confluent_kafka', 'rich') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    lazy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False, timeout=30)
    assert lazy.returncode == 0, lazy.stderr
