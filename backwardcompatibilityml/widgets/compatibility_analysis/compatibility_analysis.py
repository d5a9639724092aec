"""The compatibility analysis widget: a SweepManager behind a local REST server,
shown in a notebook by an inlined UI bundle.

Public API (``reference/compatibility_analysis_api.txt``):
:class:`CompatibilityAnalysis`, :func:`build_environment_params`,
:func:`render_widget_html`, :func:`init_app_routes`,
:func:`default_get_instance_metadata`. The REST contract is ``docs/api.md``.
"""

from __future__ import annotations

import functools
import logging
import socket
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Mapping, Optional, Tuple
from urllib.parse import urlparse

from flask import Flask

from backwardcompatibilityml.evaluation import default_instance_metadata
from backwardcompatibilityml.metrics import model_accuracy
from backwardcompatibilityml.validation import (
    check_bool,
    check_instance,
    check_port,
    check_str,
    check_str_list,
)

from . import api as _api
from . import environment as _environment
from . import registry as _registry
from . import rendering as _rendering
from .display import NotebookDisplay
from .environment import WILDCARD_HOSTS as _WILDCARD_HOSTS
from .environment import build_environment_params
from .environment import detect_environment as _detect_environment
from .server import (
    DEFAULT_HOST,
    DEFAULT_PORT_RANGE,
    PortInUseError,
    WidgetServer,
    bind_socket,
    check_host,
)

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


def _check_serve_options(port: Any, host: Any, allowed_hosts: Any, display_widget: Any,
                         token: Any) -> Dict[str, Any]:
    """Check the server arguments of a widget (TypeError or ValueError naming
    the argument); returns them as keyword arguments of ``_serve``."""
    port = check_port(port, "port")
    check_str(host, "host")
    hosts = check_str_list(allowed_hosts, "allowed_hosts")
    check_bool(display_widget, "display_widget")
    check_str(token, "token", allow_empty=False, allow_none=True)
    return {"port": port, "host": host, "allowed_hosts": hosts,
            "display_widget": bool(display_widget), "token": token}


def _bind_then_retire(folder: Any, port: Optional[int], host: str,
                      retire: Callable[[], Any]) -> Tuple[Optional[socket.socket], Any]:
    """Bind the new widget's listening socket while earlier widgets still serve, then ``retire()`` them.

    A port that is taken, or a host that cannot be listened on, then raises
    before any earlier widget is closed or its sweep cancelled. An explicit
    ``port`` that an earlier widget of this process serves is taken over
    from it (:func:`registry.release_port`), except from a widget of the same
    folder: that one must be retired first (its sweep cancelled), so only the
    host is checked before, the socket is None and :func:`_serve` binds after
    the retirement. The socket is closed if ``retire`` raises (whatever it does
    after retiring, such as reading the folder again, belongs inside it).

    Returns
    -------
    (socket or None, object)
        The bound socket and what ``retire()`` returned.
    """
    sock: Optional[socket.socket] = None
    if port is not None and port != 0 and any(
            getattr(w, "port", None) == port and w.running for w in _registry.widgets_for(folder)):
        check_host(host)
    else:
        if port is not None and port != 0:
            _registry.release_port(port)
        sock = bind_socket(host, port, DEFAULT_PORT_RANGE)
    try:
        return sock, retire()
    except BaseException:
        if sock is not None:
            sock.close()
        raise


#: The metadata shown for an instance when the user gives no callback: the id as a decimal string (the
#: sweep's own default, so that a sweep knows it is not a callback of the user's).
default_get_instance_metadata = default_instance_metadata


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
        The secret each request must send in the header ``X-BCML-Token``
        (GET ``instance_data`` and the standalone page also take the query
        parameter ``token``). When None, a random one is generated. Either
        way it is stored in ``app.config["BCML_TOKEN"]``.
    allowed_hosts : list of str, optional
        Host names accepted in the Host header besides loopback addresses
        (a single ``str`` is refused with a ``TypeError``).
    standalone_page : bool
        Serve the widget as a full page at ``GET /?token=...``.

    Returns
    -------
    str
        The token.
    """
    return _api.register_api(app, sweep_manager, token=token, allowed_hosts=allowed_hosts,
                             standalone_page=standalone_page)


class CompatibilityAnalysis(NotebookDisplay):
    """An interactive widget to explore compatibility-aware updates of a model.

    It creates a :class:`~backwardcompatibilityml.sweep_management.SweepManager`
    that trains the new model h2 with respect to the reference model h1 for
    each lambda_c in [0, 1] with the New Error and the Strict Imitation losses,
    serves the sweep through a REST API on a local server that belongs to
    this instance, and displays the widget UI in the notebook. From the UI one
    starts and cancels the sweep, follows its progress and explores the
    trade-off between performance and backward compatibility.

    The server listens on ``127.0.0.1`` (pass ``host`` to opt in to more),
    on the first free port in 5000-5099 or the given ``port``. Every API call
    needs this widget's secret token. The server runs until :meth:`close`,
    the end of a ``with`` block, or interpreter exit.

    One widget serves a sweep folder: creating a widget on a folder that an
    earlier widget of this process serves (re-running a notebook cell) closes
    the earlier widget's server and cancels its running sweep; the new widget
    shows what that sweep stored, and its Start resumes it. Wrong arguments
    raise before that, leaving the earlier widget alone. Widgets on other
    folders live side by side.

    In a notebook the widget is displayed when it is created; afterwards
    ``display(analysis)`` or ``analysis`` as the last line of a cell shows it
    again (``text/html``, with ``text/plain`` as the fallback); in the cell
    that created (and so displayed) it, only the text is shown, so that
    ``CompatibilityAnalysis(...)`` as the last line of a cell shows one
    widget. :meth:`show` displays it anywhere.

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
    OptimizerClass : type, optional
        Optimizer class instantiated for each training; None:
        ``torch.optim.SGD`` with ``lr=0.01`` unless ``optimizer_kwargs`` sets it.
    optimizer_kwargs : dict, optional
        Keyword arguments of the optimizer; None: ``{}``.
    NewErrorLossClass, StrictImitationLossClass : type, optional
        Loss classes of ``backwardcompatibilityml.loss`` for the two families;
        None: the cross-entropy pair (``BCCrossEntropyLoss``,
        ``StrictImitationCrossEntropyLoss``), which accepts logits and the
        ``(logits, softmax, log_softmax)`` triple.
    performance_metric : callable
        ``metric(model, dataset, device) -> float``, where ``dataset`` is the
        iterable of ``(instance_ids, inputs, targets)`` batches; accuracy by
        default.
    port : int, optional
        Port of the server; by default the first free one in 5000-5099.
    new_error_loss_kwargs, strict_imitation_loss_kwargs : dict, optional
        Extra keyword arguments of the loss classes.
    get_instance_image_by_id : callable, optional
        ``f(instance_id) -> image``: PNG bytes, a PIL image, a numpy array
        (H x W or H x W x 3, uint8 or float in [0, 1]) or a Flask response.
        A neutral placeholder is shown without it (and the API says so).
    get_instance_metadata : callable, optional
        ``f(instance_id) -> str``; otherwise the id as text (as
        :func:`default_get_instance_metadata`).
    device : str
        ``"cpu"`` or ``"cuda"``.
    use_ml_flow : bool
        Log the sweep to MLflow.
    ml_flow_run_name : str
        Name of the MLflow run.
    executor : {"auto", "sequential", "vectorized"} or Executor, keyword-only
        How the trainings run (see ``SweepManager``); ``"auto"`` by default.
    host : str, keyword-only
        Interface to listen on; ``"127.0.0.1"`` by default. Another value
        exposes the API (still token-protected) to the network.
    allowed_hosts : list of str, keyword-only
        Extra names accepted in the Host header (loopback names, ``host`` and
        the environment's base URL host are always accepted). A single
        ``str`` is refused: pass ``["example.com"]``.
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
    TypeError, ValueError
        A wrong argument; the message names it. ``host`` must be a ``str``
        this process can listen on (a name that does not resolve, or an
        address of another machine, is a ``ValueError``), ``allowed_hosts``
        a list of ``str`` (a single ``str`` is refused), ``port`` an ``int``
        in [0, 65535].
    PortInUseError
        The given ``port`` is taken by another program, or no port in
        5000-5099 is free.
    """

    sweep_manager: "SweepManager"  # the attributes _serve sets (the end of both constructors)
    host: str
    port: int
    token: str
    url: str
    environment: Dict[str, Any]
    app: Flask
    _server: Optional[WidgetServer]
    _rai_environment: Any

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
        executor: Any = "auto",
        host: str = DEFAULT_HOST,
        allowed_hosts: Optional[Iterable[str]] = None,
        display_widget: bool = True,
        token: Optional[str] = None,
    ) -> None:
        from backwardcompatibilityml.sweep_management import SweepManager

        new_manager = functools.partial(
            SweepManager, folder_name, number_of_epochs, h1, h2, training_set, test_set, batch_size_train,
            batch_size_test, OptimizerClass=OptimizerClass, optimizer_kwargs=optimizer_kwargs,
            NewErrorLossClass=NewErrorLossClass, StrictImitationLossClass=StrictImitationLossClass,
            lambda_c_stepsize=lambda_c_stepsize, new_error_loss_kwargs=new_error_loss_kwargs,
            strict_imitation_loss_kwargs=strict_imitation_loss_kwargs, performance_metric=performance_metric,
            get_instance_image_by_id=get_instance_image_by_id,
            get_instance_metadata=get_instance_metadata,  # None: the sweep's default, the id as text
            device=device, use_ml_flow=use_ml_flow, ml_flow_run_name=ml_flow_run_name, executor=executor)

        # Wrong arguments raise here, before an earlier widget is touched.
        options = _check_serve_options(port, host, allowed_hosts, display_widget, token)
        sweep_manager = new_manager()
        # After retiring an earlier widget, read the folder again: its sweep has stored its last point.
        sock, reread = _bind_then_retire(sweep_manager.folder_name, port, host, lambda: (
            new_manager() if _registry.retire_earlier(folder_name, trainable=True) else None))
        _serve(self, reread or sweep_manager, sock=sock, **options)  # owns the socket from here

    @classmethod
    def from_sweep_manager(cls, sweep_manager: "SweepManager", port: Optional[int] = None, *,
                           host: str = DEFAULT_HOST,
                           allowed_hosts: Optional[Iterable[str]] = None,
                           display_widget: bool = True,
                           token: Optional[str] = None) -> "CompatibilityAnalysis":
        """Serve an existing SweepManager (for example one that reopens a
        sweep folder written earlier) with the widget.

        Earlier widgets of this process on the same folder are closed and
        their sweeps cancelled (unless it is ``sweep_manager``'s); a
        read-only ``sweep_manager`` (``SweepManager.open_folder``) only
        replaces earlier read-only widgets. Every argument is checked, and
        the server's port bound, before any earlier widget is touched.

        Parameters
        ----------
        sweep_manager : SweepManager
            The sweep to serve.
        port, host, allowed_hosts, display_widget, token
            As for the constructor.

        Returns
        -------
        CompatibilityAnalysis

        Raises
        ------
        TypeError, ValueError
            A wrong argument (the message names it); ``host`` cannot be
            listened on.
        PortInUseError
            As for the constructor.
        """
        from backwardcompatibilityml.sweep_management import SweepManager

        check_instance(sweep_manager, "sweep_manager", SweepManager)
        options = _check_serve_options(port, host, allowed_hosts, display_widget, token)
        sock, _ = _bind_then_retire(sweep_manager.folder_name, port, host, lambda: _registry.retire_earlier(
            sweep_manager.folder_name, trainable=_registry.can_train(sweep_manager), keep_manager=sweep_manager))
        widget = cls.__new__(cls)
        _serve(widget, sweep_manager, sock=sock, **options)  # owns the socket from here
        return widget

    def render(self) -> str:
        """The widget HTML for this instance (a new root element each time)."""
        return render_widget_html(self.environment)

    @property
    def running(self) -> bool:
        """Whether the server still serves."""
        return getattr(self, "_server", None) is not None and self._server.running

    def close(self) -> None:
        """Stop the server and free its port (idempotent). A running sweep
        goes on; cancel it with ``sweep_manager.cancel_sweep()``."""
        if getattr(self, "_server", None) is not None:
            self._server.close()
        _registry.discard(self)

    def __enter__(self) -> "CompatibilityAnalysis":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if getattr(self, "_server", None) is None:
            return "<CompatibilityAnalysis (not started)>"
        state = "serving on %s:%d" % (self.host, self.port) if self.running else "closed"
        return "<CompatibilityAnalysis %s>" % state


def _serve(widget: CompatibilityAnalysis, sweep_manager: Any, *, port: Optional[int], host: str,
           allowed_hosts: Tuple[str, ...], display_widget: bool,
           token: Optional[str], sock: Optional[socket.socket] = None) -> None:
    """Serve ``sweep_manager`` with ``widget`` (the end of both constructors).

    Binds a socket unless ``sock`` is given, defines the Flask app's routes,
    starts the :class:`WidgetServer`, describes the environment, registers the
    widget and (``display_widget``) displays it. The function owns ``sock``:
    it is closed (or the server that took it) when a step fails. The other
    arguments are those :func:`_check_serve_options` returns.
    """
    widget.sweep_manager = sweep_manager
    widget.host = host
    widget._server = None
    if sock is None:
        if port is not None:
            _registry.release_port(port)
        sock = bind_socket(host, port, DEFAULT_PORT_RANGE)
    try:
        # Routes first (Flask refuses new ones after the first request), then
        # the server (on the bound port), then the environment, whose base
        # URL depends on the port and adds its host to the allowed Host names.
        widget.app = Flask(__name__)
        extra_hosts = set(allowed_hosts)
        if host not in _WILDCARD_HOSTS:
            extra_hosts.add(host)
        else:
            extra_hosts.update(_environment.wildcard_names())
        widget.token = init_app_routes(widget.app, sweep_manager, token=token,
                                       allowed_hosts=extra_hosts)
        widget.app.config["BCML_JSON_ERRORS_EVERYWHERE"] = True  # the whole app is ours
    except BaseException:
        sock.close()
        raise
    widget._server = WidgetServer(widget.app, host=host, sock=sock)
    widget.port = widget._server.port
    widget.app.config["BCML_PORT"] = widget.port
    try:
        _describe_environment(widget, host)
    except BaseException:
        widget._server.close()
        raise
    _registry.add(widget, sweep_manager.folder_name)
    if display_widget:
        widget.show()
        widget._displayed_when_created()


def _describe_environment(widget: CompatibilityAnalysis, host: str) -> None:
    """Set the widget's ``environment`` (as given to the UI) and ``url``, and accept the base URL's host."""
    env = _detect_environment(host, widget.port)
    params = build_environment_params(env)
    if params["base_url"]:
        base_host = urlparse(params["base_url"]).hostname
        if base_host:
            allowed = set(widget.app.config[_api.ALLOWED_HOSTS_CONFIG_KEY])
            allowed.add(base_host.lower())
            widget.app.config[_api.ALLOWED_HOSTS_CONFIG_KEY] = frozenset(allowed)
    widget._rai_environment = env
    widget.environment = {
        "environment_type": params["environment_type"],
        "base_url": params["base_url"],
        "port": widget.port,
        "token": widget.token,
    }
    widget.url = "http://%s:%d/?token=%s" % (_environment.url_host(host), widget.port, widget.token)
