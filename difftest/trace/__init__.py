"""The trace format: one event per line, a lark grammar (trace.lark), events as dataclasses."""

from difftest.trace.events import *  # noqa: F403 - the event classes are the format's vocabulary
from difftest.trace.events import Event
from difftest.trace.parse import GRAMMAR_PATH, TraceError, format_trace, load_trace, parse_trace

__all__ = ["GRAMMAR_PATH", "Event", "TraceError", "format_trace", "load_trace", "parse_trace"]
