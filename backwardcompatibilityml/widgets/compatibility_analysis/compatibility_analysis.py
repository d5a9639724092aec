"""The compatibility analysis widget: a SweepManager behind a local REST server,
shown in a notebook by an inlined UI bundle.

Public API (``reference/compatibility_analysis_api.txt``):
:class:`CompatibilityAnalysis`, :func:`build_environment_params`,
:func:`render_widget_html`, :func:`init_app_routes`,
:func:`default_get_instance_metadata`. The REST contract is ``docs/api.md``.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import socket
import sys
import types
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional
from urllib.parse import urlparse

from flask import Flask

from backwardcompatibilityml.metrics import model_accuracy

from . import api as _api
from . import rendering as _rendering
from .server import DEFAULT_HOST, DEFAULT_PORT_RANGE, PortInUseError, WidgetServer

if TYPE_CHECKING:  # pragma: no cover
    from backwardcompatibilityml.sweep_management import SweepManager

__all__ = [
    "CompatibilityAnalysis",
    "PortInUseError",
    "build_environment_params",
    "default_get_instance_metadata",
    "init_app_routes",
    "render_widget_html",
]

logger = logging.getLogger(__name__)

# rai_core_flask environment class name -> environment_type of docs/api.md.
_ENVIRONMENT_TYPES = (
    ("AzureNBEnvironment", "azureml"),
    ("DatabricksEnvironment", "databricks"),
    ("LocalIPythonEnvironment", "local"),
    ("PublicVMEnvironment", "public_vm"),
    ("CredentialedVMEnvironment", "credentialed_vm"),
)
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")

# Widgets whose server runs; like the server thread, they live until close().
_live_widgets: "set[CompatibilityAnalysis]" = set()


def _shutdown_widgets() -> None:
    """At interpreter exit: close every widget's server and stop its sweep
    after the current training step, so that no thread trains while the
    interpreter finalises and the sweep folder records the interruption."""
    for widget in list(_live_widgets):
        try:
            widget.close()
            manager = widget.sweep_manager
            if manager.is_running():
                manager.cancel_sweep()
        except Exception:  # pragma: no cover - best effort at exit
            logger.debug("closing a widget at exit failed", exc_info=True)


atexit.register(_shutdown_widgets)


def default_get_instance_metadata(instance_id: int) -> str:
    """The metadata shown for an instance when the user gives no callback.

    Parameters
    ----------
    instance_id : int
        The global instance id.

    Returns
    -------
    str
        The id as a decimal string.
    """
    return str(int(instance_id))


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


def render_widget_html(api_service_environment: Mapping[str, Any]) -> str:
    """Render the HTML of the compatibility analysis widget.

    Parameters
    ----------
    api_service_environment : mapping
        The environment type, the base URL, the port and the token of the
        Flask service: ``{"environment_type", "base_url", "port", "token"}``.

    Returns
    -------
    str
        The widget HTML: a root element with a unique id, the UI bundle and
        CSS of the package inlined, and the mounting script that passes the
        environment as JSON that cannot break out of its script tag. If the
        bundle is missing, the HTML says so.
    """
    return _rendering.render_widget_html(api_service_environment)


def init_app_routes(app: Flask, sweep_manager: "SweepManager", token: Optional[str] = None,
                    *, allowed_hosts: Optional[Iterable[str]] = None,
                    standalone_page: bool = True) -> str:
    """Define the API for the Flask app.

    Registers the ``/api/v1`` routes of ``docs/api.md``, JSON error handlers,
    the token and Host checks, CORS for the notebook page, and (by default)
    the standalone page at ``/``.

    Parameters
    ----------
    app : flask.Flask
        The Flask app to use for the API (a plain ``Flask(__name__)`` works);
        call this before the app serves its first request.
    sweep_manager : SweepManager
        The SweepManager that will be controlled by the API.
    token : str, optional
        The secret each request must send (header ``X-BCML-Token`` or query
        parameter ``token``). When None, a random one is generated. Either
        way it is stored in ``app.config["BCML_TOKEN"]``.
    allowed_hosts : iterable of str, optional
        Host names accepted in the Host header besides loopback addresses.
    standalone_page : bool
        Serve the widget as a full page at ``GET /?token=...``.

    Returns
    -------
    str
        The token.
    """
    return _api.register_api(app, sweep_manager, token=token, allowed_hosts=allowed_hosts,
                             standalone_page=standalone_page)


def _is_loopback(host: str) -> bool:
    return _api.is_loopback_host(host)


def _detect_environment(host: str, port: int) -> Any:
    """The rai_core_flask environment of this kernel, or None."""
    try:
        from rai_core_flask.environment_detector import build_environment
    except Exception:  # pragma: no cover - rai_core_flask missing or broken
        logger.debug("rai_core_flask environment detection unavailable", exc_info=True)
        return None
    probe_ip = "localhost" if (_is_loopback(host) or host in _WILDCARD_HOSTS) else host
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


def _wildcard_names() -> List[str]:
    names = set()
    try:
        hostname = socket.gethostname()
        names.update({hostname, socket.getfqdn()})
        for info in socket.getaddrinfo(hostname, None):
            names.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(n for n in names if n)


def _url_host(host: str) -> str:
    if host in _WILDCARD_HOSTS or _is_loopback(host):
        return "[::1]" if host in ("::1", "::") else "127.0.0.1"
    try:
        if ipaddress.ip_address(host).version == 6:
            return "[%s]" % host
    except ValueError:
        pass
    return host


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    return get_ipython() is not None


class CompatibilityAnalysis:
    """An interactive widget to explore compatibility-aware updates of a model.

    It creates a :class:`~backwardcompatibilityml.sweep_management.SweepManager`
    that trains the new model h2 with respect to the reference model h1 for
    each lambda_c in [0, 1] with the New Error and the Strict Imitation losses,
    serves the sweep through a REST API on a local Flask server that belongs to
    this instance, and displays the widget UI in the notebook. From the UI one
    starts and cancels the sweep, follows its progress and explores the
    trade-off between performance and backward compatibility.

    The server listens on ``127.0.0.1`` (pass ``host`` to opt in to more),
    on the first free port in 5000-5099 or the given ``port``. Every API call
    needs this widget's secret token. The server runs until :meth:`close`,
    the end of a ``with`` block, or interpreter exit. Creating the widget again
    serves the new models on a new port (or takes over the given ``port`` from
    an earlier widget of this process); several widgets can live side by side.

    Parameters
    ----------
    folder_name : str
        Folder where the results of the sweep are stored.
    number_of_epochs : int
        Training epochs for each lambda_c and loss family.
    h1 : torch.nn.Module
        The reference model.
    h2 : torch.nn.Module
        The new model to train (each training starts from a copy of it).
    training_set, test_set : iterable of (instance_ids, inputs, targets)
        Batches; ``instance_ids`` are global ids used for images and metadata.
    batch_size_train, batch_size_test : int
        Batch sizes of the training and the test set.
    lambda_c_stepsize : float
        Step of lambda_c between 0.0 and 1.0.
    OptimizerClass : type
        Optimizer class instantiated for each training.
    optimizer_kwargs : dict
        Keyword arguments of the optimizer.
    NewErrorLossClass, StrictImitationLossClass : type
        Loss classes of ``backwardcompatibilityml.loss`` for the two families.
    performance_metric : callable
        ``metric(model, dataset, device)``; accuracy by default.
    port : int, optional
        Port of the Flask service; by default the first free one in 5000-5099.
    new_error_loss_kwargs, strict_imitation_loss_kwargs : dict, optional
        Extra keyword arguments of the loss classes.
    get_instance_image_by_id : callable, optional
        ``f(instance_id) -> image``: PNG bytes, a PIL image, a numpy array
        (H x W or H x W x 3, uint8 or float in [0, 1]) or a Flask response.
        A neutral placeholder is shown without it.
    get_instance_metadata : callable, optional
        ``f(instance_id) -> str``; :func:`default_get_instance_metadata`
        otherwise.
    device : str
        ``"cpu"`` or ``"cuda"``.
    use_ml_flow : bool
        Log the sweep to MLflow.
    ml_flow_run_name : str
        Name of the MLflow run.
    host : str, keyword-only
        Interface to listen on; ``"127.0.0.1"`` by default. Another value
        exposes the API (still token-protected) to the network.
    allowed_hosts : iterable of str, keyword-only
        Extra names accepted in the Host header (loopback names, ``host`` and
        the environment's base URL host are always accepted).
    display_widget : bool, keyword-only
        Display the widget at once (in IPython), or print the standalone page
        URL outside IPython. Default True.
    token : str, keyword-only
        The API secret; random (``secrets``) by default.

    Attributes
    ----------
    sweep_manager : SweepManager
    port : int
    token : str
    url : str
        The standalone page of this widget, token included.
    environment : dict
        ``environment_type``, ``base_url``, ``port`` and ``token`` as given
        to the UI.

    Raises
    ------
    PortInUseError
        The given ``port`` is taken by another program, or no port in
        5000-5099 is free.
    """

    def __init__(
        self,
        folder_name: str,
        number_of_epochs: int,
        h1: Any,
        h2: Any,
        training_set: Any,
        test_set: Any,
        batch_size_train: int,
        batch_size_test: int,
        lambda_c_stepsize: float = 0.25,
        OptimizerClass: Any = None,
        optimizer_kwargs: Optional[Dict[str, Any]] = None,
        NewErrorLossClass: Any = None,
        StrictImitationLossClass: Any = None,
        performance_metric: Callable[..., float] = model_accuracy,
        port: Optional[int] = None,
        new_error_loss_kwargs: Optional[Dict[str, Any]] = None,
        strict_imitation_loss_kwargs: Optional[Dict[str, Any]] = None,
        get_instance_image_by_id: Optional[Callable[[int], Any]] = None,
        get_instance_metadata: Optional[Callable[[int], str]] = None,
        device: str = "cpu",
        use_ml_flow: bool = False,
        ml_flow_run_name: str = "compatibility_sweep",
        *,
        host: str = DEFAULT_HOST,
        allowed_hosts: Optional[Iterable[str]] = None,
        display_widget: bool = True,
        token: Optional[str] = None,
    ) -> None:
        from backwardcompatibilityml.sweep_management import SweepManager

        sweep_manager = SweepManager(
            folder_name, number_of_epochs, h1, h2, training_set, test_set,
            batch_size_train, batch_size_test, OptimizerClass, optimizer_kwargs,
            NewErrorLossClass, StrictImitationLossClass,
            lambda_c_stepsize=lambda_c_stepsize,
            new_error_loss_kwargs=new_error_loss_kwargs,
            strict_imitation_loss_kwargs=strict_imitation_loss_kwargs,
            performance_metric=performance_metric,
            get_instance_image_by_id=get_instance_image_by_id,
            get_instance_metadata=get_instance_metadata or default_get_instance_metadata,
            device=device, use_ml_flow=use_ml_flow, ml_flow_run_name=ml_flow_run_name)
        self._serve(sweep_manager, port=port, host=host, allowed_hosts=allowed_hosts,
                    display_widget=display_widget, token=token)

    @classmethod
    def from_sweep_manager(cls, sweep_manager: "SweepManager", port: Optional[int] = None, *,
                           host: str = DEFAULT_HOST,
                           allowed_hosts: Optional[Iterable[str]] = None,
                           display_widget: bool = True,
                           token: Optional[str] = None) -> "CompatibilityAnalysis":
        """Serve an existing SweepManager (for example one that reopens a
        sweep folder written earlier) with the widget.

        Parameters
        ----------
        sweep_manager : SweepManager
            The sweep to serve.
        port, host, allowed_hosts, display_widget, token
            As for the constructor.

        Returns
        -------
        CompatibilityAnalysis
        """
        widget = cls.__new__(cls)
        widget._serve(sweep_manager, port=port, host=host, allowed_hosts=allowed_hosts,
                      display_widget=display_widget, token=token)
        return widget

    # ------------------------------------------------------------------ setup

    def _serve(self, sweep_manager: Any, *, port: Optional[int], host: str,
               allowed_hosts: Optional[Iterable[str]], display_widget: bool,
               token: Optional[str]) -> None:
        self.sweep_manager = sweep_manager
        self.host = host
        self._server: Optional[WidgetServer] = None
        if port is not None:
            self._take_over_port(host, port)
        # Routes first (Flask refuses new ones after the first request), then
        # the server (which picks the port), then the environment, whose base
        # URL depends on the port and adds its host to the allowed Host names.
        self.app = Flask(__name__)
        extra_hosts = set(allowed_hosts or ())
        if host not in _WILDCARD_HOSTS:
            extra_hosts.add(host)
        else:
            extra_hosts.update(_wildcard_names())
        self.token = init_app_routes(self.app, sweep_manager, token=token,
                                     allowed_hosts=extra_hosts)
        self.app.config["BCML_JSON_ERRORS_EVERYWHERE"] = True  # the whole app is ours
        self._server = WidgetServer(self.app, host=host, port=port,
                                    port_range=DEFAULT_PORT_RANGE)
        self.port = self._server.port
        self.app.config["BCML_PORT"] = self.port
        try:
            self._describe_environment(host)
        except BaseException:
            self._server.close()
            raise
        _live_widgets.add(self)
        if display_widget:
            self.show()

    def _describe_environment(self, host: str) -> None:
        env = _detect_environment(host, self.port)
        params = build_environment_params(env)
        if params["base_url"]:
            base_host = urlparse(params["base_url"]).hostname
            if base_host:
                allowed = set(self.app.config[_api.ALLOWED_HOSTS_CONFIG_KEY])
                allowed.add(base_host.lower())
                self.app.config[_api.ALLOWED_HOSTS_CONFIG_KEY] = frozenset(allowed)
        self._rai_environment = env
        self.environment: Dict[str, Any] = {
            "environment_type": params["environment_type"],
            "base_url": params["base_url"],
            "port": self.port,
            "token": self.token,
        }
        self.url = "http://%s:%d/?token=%s" % (_url_host(host), self.port, self.token)

    @staticmethod
    def _take_over_port(host: str, port: int) -> None:
        """An earlier widget of this process on the same port gives it up
        (re-running a notebook cell with an explicit port)."""
        if port == 0:
            return
        for widget in list(_live_widgets):
            if widget.port == port and widget.running:
                warnings.warn(
                    "Port %d was served by an earlier CompatibilityAnalysis widget of "
                    "this process; closing it to serve the new one." % port,
                    UserWarning, stacklevel=4)
                widget.close()

    # ------------------------------------------------------------------ use

    def render(self) -> str:
        """The widget HTML for this instance (a new root element each time)."""
        return render_widget_html(self.environment)

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
        if _in_ipython():
            from IPython.display import HTML, display
            display(HTML(html))
        else:
            print("Compatibility analysis widget: %s" % self.url, file=sys.stdout)

    @property
    def running(self) -> bool:
        """Whether the server still serves."""
        return self._server is not None and self._server.running

    def close(self) -> None:
        """Stop the server and free its port (idempotent). A running sweep
        goes on; cancel it with ``sweep_manager.cancel_sweep()``."""
        if self._server is not None:
            self._server.close()
        _live_widgets.discard(self)

    def __enter__(self) -> "CompatibilityAnalysis":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if getattr(self, "_server", None) is None:
            return "<CompatibilityAnalysis (not started)>"
        state = "serving on %s:%d" % (self.host, self.port) if self.running else "closed"
        return "<CompatibilityAnalysis %s>" % state
