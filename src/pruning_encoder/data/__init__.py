"""Training data: records, builders, question rules, FanOutQA, LLM labelling."""

from __future__ import annotations

from .records import DataError, Record, load_records, read_records, write_records

__all__ = ["DataError", "Record", "load_records", "read_records", "write_records"]
