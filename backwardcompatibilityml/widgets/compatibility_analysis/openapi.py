"""The OpenAPI 3 description of the widget's REST API.

The document is ``resources/openapi.json`` inside the package (shipped as
package data); the widget serves it at ``GET /api/v1/openapi.json`` (token
required, like every API route). It is read once per process.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, Dict

__all__ = ["OPENAPI_RESOURCE", "openapi_document", "openapi_json"]

#: The document's name in the package's ``resources`` folder.
OPENAPI_RESOURCE = "openapi.json"


@functools.lru_cache(maxsize=1)
def openapi_json() -> bytes:
    """The OpenAPI document as UTF-8 JSON bytes (read once, then cached).

    Returns
    -------
    bytes
    """
    return (resources.files(__package__) / "resources" / OPENAPI_RESOURCE).read_bytes()


def openapi_document() -> Dict[str, Any]:
    """The OpenAPI document as a new dict.

    Returns
    -------
    dict
        A fresh copy each call: the caller may change it.
    """
    return json.loads(openapi_json())
