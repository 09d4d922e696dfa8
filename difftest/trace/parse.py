"""Reading and writing trace files: text <-> a list of events (events.py), through trace.lark."""

from functools import cache
from pathlib import Path

from lark import Lark, Token, Transformer, UnexpectedInput

from difftest.trace.events import (
    PORT_WIDTHS,
    Config,
    DiskDone,
    Event,
    Expect,
    ExpectMemory,
    FrameReceived,
    GuestRequest,
    MemoryWrite,
    Network,
    PolicyChange,
    PortRead,
    PortWrite,
    PowerCut,
    Restart,
    Server,
    StoreFail,
    Tick,
)

GRAMMAR_PATH = Path(__file__).with_name("trace.lark")


class TraceError(ValueError):
    """A trace that does not follow the grammar, or names a value out of range; says where."""


@cache
def parser() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(), parser="lalr", propagate_positions=True)


def number(token: Token) -> int:
    return int(str(token), 0)


class ToEvents(Transformer):
    """Turns the parse tree into events; each method is one rule of trace.lark."""

    def start(self, items):
        return list(items)

    def bytes(self, items):
        return bytes(int(str(t), 16) for t in items)

    def config(self, items):
        key, value = items
        return Config(str(key), number(value) if value.type == "INT" else str(value))

    def port_read(self, items):
        width = PORT_WIDTHS[int(str(items[0])[2:])]
        return PortRead(width, number(items[1]), number(items[2]) if len(items) > 2 else None)

    def port_write(self, items):
        width = PORT_WIDTHS[int(str(items[0])[3:])]
        value = number(items[2])
        if value >> (8 * width):
            raise TraceError(f"line {items[0].line}: value {value:#x} does not fit in {width} bytes")
        return PortWrite(width, number(items[1]), value)

    def tick(self, items):
        return Tick(number(items[0]) if items else 1)

    def memory(self, items):
        return MemoryWrite(number(items[0]), items[1])

    def memory_fill(self, items):
        address, value, length = (number(t) for t in items)
        if value > 0xFF:
            raise TraceError(f"line {items[1].line}: fill value {value:#x} is not a byte")
        return MemoryWrite(address, bytes([value]) * length)

    def expect(self, items):
        return Expect(str(items[0]), number(items[1]))

    def expect_memory(self, items):
        return ExpectMemory(number(items[0]), items[1])

    def store_fail(self, items):
        return StoreFail(number(items[0]))

    def frame(self, items):
        return FrameReceived(items[0])

    def disk(self, items):
        if isinstance(items[1], Token) and items[1].type == "DISK_OK":
            return DiskDone(number(items[0]))
        return DiskDone(number(items[0]), ok=False, error=number(items[1]))

    def power_cut(self, items):
        return PowerCut(str(items[0]) if items else None)

    def restart(self, items):
        return Restart()

    def policy(self, items):
        return PolicyChange(str(items[0]))

    def network(self, items):
        return Network(str(items[0]), tuple(number(t) for t in items[1:]))

    def server(self, items):
        return Server(str(items[0]))

    def guest(self, items):
        return GuestRequest(str(items[0]), tuple(number(t) for t in items[1:]))


def parse_trace(text: str, source: str = "<trace>") -> list[Event]:
    """The events of a trace; TraceError (with the line and column) when it does not parse."""
    try:
        tree = parser().parse(text)
    except UnexpectedInput as error:
        raise TraceError(f"{source}:{error.line}:{error.column}: not a trace line\n{error.get_context(text)}") from None
    try:
        return ToEvents().transform(tree)
    except Exception as error:  # lark wraps errors raised in the transformer
        cause = getattr(error, "orig_exc", error)
        raise TraceError(f"{source}: {cause}") from None


def format_trace(events: list[Event], comment: str = "") -> str:
    """The text of a trace: an optional header comment, then one line per event."""
    header = [f"# {line}".rstrip() for line in comment.splitlines()]
    return "\n".join(header + [event.line() for event in events]) + "\n"


def load_trace(path: Path) -> list[Event]:
    return parse_trace(Path(path).read_text(), str(path))
