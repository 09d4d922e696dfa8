"""What every generated C header shares: C names made from the spec's names, and writing or checking the file.

Headers are committed so the VMM builds without Python; each generator's `--check` and a test keep them current.
"""

import re
import sys
from pathlib import Path


def c_identifier(text: str) -> str:
    """`CommandBlock` -> `COMMAND_BLOCK`, `pio-in fetching` -> `PIO_IN_FETCHING`, `READ DMA` -> `READ_DMA`."""
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", text)
    return snake.upper().replace("-", "_").replace(" ", "_")


def write_or_check(header: Path, text: str, source: str, argv: list[str]) -> int:
    """Write `text` to `header`; with `--check` only compare, and return 1 when the committed file is stale."""
    if "--check" in argv:
        if header.read_text() != text:
            print(f"{header.name} differs from {source}; regenerate it", file=sys.stderr)
            return 1
        return 0
    header.write_text(text)
    return 0
