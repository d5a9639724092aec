"""Where the notebook runs (local, AzureML, Databricks, a VM) and the API's
base URL there.

rai-core-flask knows the hosted notebook environments, but importing it
imports its Flask-SocketIO / gevent server as well. It is therefore imported
only when there is something to detect: a widget on a loopback address in a
kernel without a hosted environment's marker (the usual local Jupyter) is
local without importing it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import types
from typing import Any, Dict, List

__all__ = [
    "AZURE_NBVM_FILE",
    "DATABRICKS_ENV_VAR",
    "WILDCARD_HOSTS",
    "build_environment_params",
    "detect_environment",
    "is_loopback_host",
    "url_host",
    "wildcard_names",
]

logger = logging.getLogger(__name__)

#: The file that marks an AzureML compute instance (as rai_core_flask reads it).
AZURE_NBVM_FILE = "/mnt/azmnt/.nbvm"
#: The environment variable that marks a Databricks cluster.
DATABRICKS_ENV_VAR = "DATABRICKS_RUNTIME_VERSION"
WILDCARD_HOSTS = ("", "0.0.0.0", "::")

# rai_core_flask environment class name -> environment_type of docs/api.md.
_ENVIRONMENT_TYPES = (
    ("AzureNBEnvironment", "azureml"),
    ("DatabricksEnvironment", "databricks"),
    ("LocalIPythonEnvironment", "local"),
    ("PublicVMEnvironment", "public_vm"),
    ("CredentialedVMEnvironment", "credentialed_vm"),
)


def is_loopback_host(host: str) -> bool:
    """Whether a host name (no port) names the loopback interface."""
    host = host.strip().lower().strip("[]").rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_environment_params(flask_service_env: Any) -> Dict[str, Any]:
    """Environment type and API base URL for a rai_core_flask environment.

    Parameters
    ----------
    flask_service_env : rai_core_flask environment or None
        An instance of one of the classes of ``rai_core_flask.environments``
        (``AzureNBEnvironment``, ``DatabricksEnvironment``,
        ``LocalIPythonEnvironment``, ``PublicVMEnvironment``,
        ``CredentialedVMEnvironment``); None or anything else counts as local.

    Returns
    -------
    dict
        ``{"environment_type": str, "base_url": str or None}``. The type is
        ``"azureml"``, ``"databricks"``, ``"local"``, ``"public_vm"`` or
        ``"credentialed_vm"``. ``base_url`` is None for local environments:
        the UI then reaches the server on its own page's host name and the
        server's port (see ``docs/api.md``).
    """
    class_names = [cls.__name__ for cls in type(flask_service_env).__mro__]
    environment_type = "local"
    for class_name, name in _ENVIRONMENT_TYPES:
        if class_name in class_names:
            environment_type = name
            break
    base_url = getattr(flask_service_env, "base_url", None) or None
    if environment_type == "local":
        base_url = None
    return {"environment_type": environment_type, "base_url": base_url}


def _plainly_local(host: str) -> bool:
    """A loopback (or unspecified) host and no hosted environment's marker."""
    if not (is_loopback_host(host) or host in WILDCARD_HOSTS):
        return False
    return DATABRICKS_ENV_VAR not in os.environ and not os.path.isfile(AZURE_NBVM_FILE)


def detect_environment(host: str, port: int) -> Any:
    """The rai_core_flask environment of this kernel, or None for local.

    Parameters
    ----------
    host : str
        The interface the widget's server listens on.
    port : int
        Its port.

    Returns
    -------
    rai_core_flask environment or None
        None when the kernel is plainly local (rai_core_flask is then not
        imported), or when detection fails.
    """
    if _plainly_local(host):
        return None
    try:
        from rai_core_flask.environment_detector import build_environment
    except Exception:  # pragma: no cover - rai_core_flask missing or broken
        logger.debug("rai_core_flask environment detection unavailable", exc_info=True)
        return None
    from flask import Flask

    probe_ip = "localhost" if (is_loopback_host(host) or host in WILDCARD_HOSTS) else host
    # A stand-in for rai_core_flask's FlaskHelper: detection reads ip, port and
    # with_credentials; select() configures CORS on a throwaway app, not ours.
    service = types.SimpleNamespace(
        ip=probe_ip, port=port, with_credentials=False, is_private_link=False,
        app=Flask("bcml_environment_probe"), cors=None, env_name=None)
    try:
        return build_environment(service)
    except Exception:
        logger.debug("no rai_core_flask environment detected", exc_info=True)
        return None


def wildcard_names() -> List[str]:
    """This machine's names and addresses: the Host headers a browser may send
    to a server listening on every interface."""
    names = set()
    try:
        hostname = socket.gethostname()
        names.update({hostname, socket.getfqdn()})
        for info in socket.getaddrinfo(hostname, None):
            names.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(n for n in names if n)


def url_host(host: str) -> str:
    """The host part of a URL that reaches a server listening on ``host``."""
    if host in WILDCARD_HOSTS or is_loopback_host(host):
        return "[::1]" if host in ("::1", "::") else "127.0.0.1"
    try:
        if ipaddress.ip_address(host).version == 6:
            return "[%s]" % host
    except ValueError:
        pass
    return host
