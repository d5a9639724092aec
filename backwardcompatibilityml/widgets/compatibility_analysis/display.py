"""How a widget shows itself: in a notebook (IPython display, the rich
``_repr_*_`` methods), in Databricks, or as a URL outside IPython."""

from __future__ import annotations

import logging
import sys
from typing import Any, Dict, Optional

__all__ = ["NotebookDisplay", "execution_count", "in_ipython"]

logger = logging.getLogger(__name__)


def in_ipython() -> bool:
    """Whether this code runs in an IPython shell or kernel."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    return get_ipython() is not None


def execution_count() -> Optional[int]:
    """The number of the notebook cell running now, or None outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    shell = get_ipython()
    return None if shell is None else getattr(shell, "execution_count", None)


class NotebookDisplay:
    """Display methods of a widget (a mixin).

    The widget provides ``render()`` (its HTML), ``running``, ``url``,
    ``environment`` and ``_rai_environment``, and sets ``_shown_in_cell``
    (the cell that displayed it when it was created).
    """

    _shown_in_cell: Optional[int] = None

    def show(self) -> None:
        """Display the widget (again) in the notebook; outside IPython print
        the standalone page URL."""
        html = self.render()
        if self.environment["environment_type"] == "databricks" and \
                hasattr(self._rai_environment, "display"):
            try:
                self._rai_environment.display(html)
                return
            except Exception:
                logger.debug("Databricks display failed; using IPython", exc_info=True)
        if in_ipython():
            from IPython.display import HTML, display
            display(HTML(html))
        else:
            print("Compatibility analysis widget: %s" % self.url, file=sys.stdout)

    def _shown_in_this_cell(self) -> bool:
        """Whether the constructor displayed the widget in the cell running now."""
        count = execution_count()
        return count is not None and count == getattr(self, "_shown_in_cell", None)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Dict[str, Any]:
        """``text/html`` (the widget, while its server runs) and ``text/plain``."""
        bundle: Dict[str, Any] = {"text/plain": repr(self)}
        html = self._repr_html_()
        if html is not None:
            bundle["text/html"] = html
        return bundle

    def _repr_html_(self) -> Optional[str]:
        """The widget HTML; None when the server is closed, or when the cell
        that created the widget (and displayed it) ends with it."""
        if not self.running or self._shown_in_this_cell():
            return None
        return self.render()


    def _displayed_when_created(self) -> None:
        """Remember that the widget was displayed by the cell running now."""
        self._shown_in_cell = execution_count()
