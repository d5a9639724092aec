"""Per-instance results as columns: writing them, reading them back, and every view computed from them.

Layout of a sweep folder and the file schema: ``docs/results-format.md``.

* :class:`ResultFiles` -- one folder's datapoints: write, list, views, full records, DataFrames, CSV.
* :func:`write_result` -- store a finished job's datapoints.
* :class:`CorruptDatapointError` -- a datapoint is stored but its files cannot be read.
* :class:`ColumnView`, :class:`RecordView` -- the views of one datapoint (Venn counts, per-class
  figures, paged instance lists, CSV, the seed's record).
"""

from .column_view import ColumnView, ReferenceColumns
from .columns import read_columns
from .errors import CorruptDatapointError
from .files import ResultFiles
from .record_view import RecordView
from .views import FULL_RECORD_MAX_ERRORS, REGIONS, SORT_KEYS, BaseView, FullRecordTooLarge
from .writer import write_result

__all__ = [
    "ResultFiles", "write_result", "ColumnView", "RecordView", "ReferenceColumns", "BaseView",
    "FullRecordTooLarge", "FULL_RECORD_MAX_ERRORS", "REGIONS", "SORT_KEYS", "read_columns", "CorruptDatapointError",
]
