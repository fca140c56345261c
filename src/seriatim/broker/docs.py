"""Generate docs/protocol.md from the handler registry: ``python -m seriatim.broker.docs``.

The table is what ApiVersions advertises, so the document cannot drift from the code
(tests/unit/test_protocol_doc.py fails when the committed file is stale).
"""

from __future__ import annotations

import sys
from pathlib import Path

from seriatim.broker.handlers import load_all

HEADER = """# Kafka APIs served by seriatim

Generated from the handler registry by `python -m seriatim.broker.docs`; do not edit by hand.
"Advertised" is what ApiVersions tells clients; "served" is what the broker decodes. Produce is
advertised from v0 because librdkafka before 2.11.1 enables compression only when the range
contains v0 (KAFKA-18659); v0-v2 requests close the connection, as no supported client sends
them.

"""


def render() -> str:
    return HEADER + load_all().render_markdown()


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else Path("docs/protocol.md")
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
