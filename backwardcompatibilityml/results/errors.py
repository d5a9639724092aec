"""The error of a datapoint that is stored but cannot be read."""

from __future__ import annotations

__all__ = ["CorruptDatapointError"]


class CorruptDatapointError(Exception):
    """A datapoint's files are in the sweep folder but cannot be read (truncated, damaged, of the wrong shape).

    Not a :class:`KeyError`: the datapoint exists, so "unknown datapoint"
    would be wrong. The REST API answers it with 500 and a JSON error that
    names the datapoint only (``docs/api.md``); the reason (which file, what is
    wrong) is logged and kept in :attr:`reason`.

    Parameters
    ----------
    datapoint_index : int
        The datapoint.
    reason : str
        What is wrong, for the log (may name files of the folder).
    """

    def __init__(self, datapoint_index: int, reason: str) -> None:
        super().__init__(f"datapoint {datapoint_index} is stored but its files cannot be read: {reason}")
        self.datapoint_index = datapoint_index
        self.reason = reason
