"""Support code of the browser tests: servers, the widget's API, console errors, screenshots.

Nothing here knows about the widget's DOM; ``widget_driver.py`` does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import requests

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS_DIR = os.path.join(REPO_ROOT, "artifacts", "e2e")
NOTEBOOKS_DIR = os.path.join(REPO_ROOT, "notebooks")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 1000}

# Pages that are open, so that a failing test can leave a screenshot behind.
ACTIVE_PAGES: Dict[str, Any] = {}


# -- small utilities ----------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nothing_listens(port: int) -> bool:
    """True when a connection to 127.0.0.1:port is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2,
               message: str = "condition") -> Any:
    """Call ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # keep polling; report the last error on timeout
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}{detail}")
        time.sleep(interval)


def tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return "(no log)"


def artifact_path(name: str) -> str:
    os.makedirs(ARTIFACTS_DIR, exist_ok=True)
    return os.path.join(ARTIFACTS_DIR, name)


# -- chromium -----------------------------------------------------------------------------------

def find_or_install_chromium() -> str:
    """Debian's chromium; installed with apt-get when missing (as root). Never skips."""
    for candidate in (os.environ.get("BCML_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            return candidate
    if os.geteuid() != 0:
        raise RuntimeError("chromium is missing and the tests do not run as root: "
                           "install it with `sudo apt-get install -y chromium`")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, timeout=900)
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        raise RuntimeError("apt-get installed chromium but /usr/bin/chromium is missing")
    return path


# -- console errors -----------------------------------------------------------------------------

class ConsoleLog:
    """Console messages of type error and uncaught page errors of one page.

    ``harmless`` holds regular expressions of known, harmless messages of the
    host page (JupyterLab); a message that names the widget's own server is
    never treated as harmless.
    """

    def __init__(self, page: Any, harmless: Iterable[str] = (), widget_marker: Optional[Callable[[], Optional[str]]] = None):
        self.entries: List[str] = []
        self.harmless = [re.compile(p) for p in harmless]
        self.widget_marker = widget_marker
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            location = ""
            try:
                loc = message.location
                if loc and loc.get("url"):
                    location = f" [{loc.get('url')}:{loc.get('lineNumber')}]"
            except Exception:
                pass
            self.entries.append(f"console.error: {message.text}{location}")

    def _on_page_error(self, error: Any) -> None:
        self.entries.append(f"pageerror: {error}")

    def unexpected(self) -> List[str]:
        marker = self.widget_marker() if self.widget_marker else None
        out = []
        for entry in self.entries:
            if marker and marker in entry:
                out.append(entry)
            elif not any(p.search(entry) for p in self.harmless):
                out.append(entry)
        return out

    def save(self, name: str) -> str:
        """Every collected entry, and which were ignored as harmless, to ``artifacts/e2e/<name>``."""
        path = artifact_path(name)
        ignored = self.ignored()
        with open(path, "w", encoding="utf-8") as handle:
            for entry in self.entries:
                handle.write(("IGNORED (harmless) " if entry in ignored else "") + entry + "\n")
        return path

    def ignored(self) -> List[str]:
        keep = set(self.unexpected())
        return [e for e in self.entries if e not in keep]


# -- the widget's REST API ----------------------------------------------------------------------

class WidgetApi:
    """The widget server's API, read with requests (the test's own view of the truth)."""

    def __init__(self, port: int, token: str, host: str = "127.0.0.1"):
        self.port = port
        self.token = token
        self.base = f"http://{host}:{port}/api/v1"
        self.session = requests.Session()
        self.session.headers["X-BCML-Token"] = token

    def get(self, path: str, **params: Any) -> Any:
        response = self.session.get(f"{self.base}/{path}", params=params or None, timeout=30)
        assert response.status_code == 200, f"GET {path} {params}: {response.status_code} {response.text[:300]}"
        return response.json()

    def status(self) -> Dict[str, Any]:
        return self.get("sweep_status")

    def summary(self) -> Dict[str, Any]:
        return self.get("sweep_summary")

    def evaluation(self, index: int) -> Dict[str, Any]:
        return self.get(f"evaluation_data/{index}")

    def instances(self, index: int, **filters: Any) -> List[Dict[str, Any]]:
        """Every instance of a filter, read page by page (limit 500)."""
        items: List[Dict[str, Any]] = []
        offset = 0
        while True:
            page = self.get(f"evaluation_data/{index}/instances", limit=500, offset=offset, **filters)
            items.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                assert len(items) == page["total"], f"paging {filters}: {len(items)} items, total {page['total']}"
                return items

    def wait_idle(self, timeout: float = 60) -> Dict[str, Any]:
        return wait_until(lambda: (lambda s: s if not s["running"] else None)(self.status()),
                          timeout, 0.5, "the sweep to stop")


def parse_widget_config(script_text: str) -> Dict[str, Any]:
    """CONFIG of the mounting script: ``... var config={...}; ...`` or ``mountWidget(root, {...})``."""
    start = script_text.find('{"environment_type"')
    if start < 0:
        raise ValueError("no widget configuration in the mounting script")
    config, _ = json.JSONDecoder().raw_decode(script_text[start:])
    return config


# -- processes ----------------------------------------------------------------------------------

def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> Optional[int]:
    """Send ``sig``, wait, then kill; returns the exit code (None if it had to be killed)."""
    if process.poll() is not None:
        return process.returncode
    try:
        process.send_signal(sig)
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return None


class LineReader:
    """Reads a process's stdout in a thread, keeping every line."""

    def __init__(self, stream: Any, log_path: str):
        self.lines: List[str] = []
        self._stream = stream
        self._log = open(log_path, "w", encoding="utf-8")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line)
            self._log.write(line)
            self._log.flush()
        self._log.close()

    def find(self, pattern: str) -> Optional[re.Match]:
        regex = re.compile(pattern)
        for line in list(self.lines):
            match = regex.search(line)
            if match:
                return match
        return None


class JupyterLabServer:
    """``jupyter lab`` on 127.0.0.1 with a token, private HOME and Jupyter dirs, in ``workdir``."""

    def __init__(self, workdir: str, notebook_dir: str):
        self.workdir = workdir
        self.notebook_dir = notebook_dir
        self.port = free_port()
        self.token = os.urandom(24).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, "jupyterlab.log")
        self.process: Optional[subprocess.Popen] = None

    def _settings(self) -> str:
        # User settings of this run only: no news toasts or update checks over the widget.
        settings = os.path.join(self.workdir, "lab-settings")
        path = os.path.join(settings, "@jupyterlab", "apputils-extension")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "notification.jupyterlab-settings"), "w") as handle:
            json.dump({"fetchNews": "false", "checkForUpdates": False}, handle)
        return settings

    def start(self, timeout: float = 90) -> None:
        dirs = {name: os.path.join(self.workdir, name)
                for name in ("home", "runtime", "config", "data", "ipython", "workspaces", "tmp")}
        for path in dirs.values():
            os.makedirs(path, exist_ok=True)
        env = dict(os.environ)
        env.update(HOME=dirs["home"], JUPYTER_RUNTIME_DIR=dirs["runtime"], JUPYTER_CONFIG_DIR=dirs["config"],
                   JUPYTER_DATA_DIR=dirs["data"], IPYTHONDIR=dirs["ipython"], PYTHONUNBUFFERED="1",
                   TMPDIR=dirs["tmp"])  # the notebook's sweep folder (tempfile.mkdtemp) lands here
        env.pop("JUPYTER_PATH", None)
        command = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.notebook_dir}",
            f"--LabApp.user_settings_dir={self._settings()}",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
        ]
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=self.notebook_dir, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{tail(self.log_path)}")
            try:
                return requests.get(f"{self.url}/api/status", headers=self.auth, timeout=2).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait_until(ready, timeout, 0.3, "jupyter lab to answer /api/status")
        except BaseException:
            self.stop()
            raise

    @property
    def auth(self) -> Dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def kernels(self) -> List[Dict[str, Any]]:
        return requests.get(f"{self.url}/api/kernels", headers=self.auth, timeout=10).json()

    def delete_kernels(self) -> None:
        try:
            for kernel in self.kernels():
                requests.delete(f"{self.url}/api/kernels/{kernel['id']}", headers=self.auth, timeout=30)
        except requests.RequestException:
            pass

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.delete_kernels()
            stop_process(self.process, signal.SIGTERM, 20)
        self._log.close()


class _CliServer:
    """A ``python -m backwardcompatibilityml`` command that serves the widget on a free port.

    Subclasses set ``name`` (for log files and messages) and build ``arguments()``.
    """

    name = "cli"

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = os.path.join(workdir, f"{self.name}.log")
        self.process: Optional[subprocess.Popen] = None
        self.url: Optional[str] = None
        self.token: Optional[str] = None

    def arguments(self) -> List[str]:
        raise NotImplementedError

    def program(self) -> List[str]:
        """The command before ``arguments()``."""
        return [sys.executable, "-m", "backwardcompatibilityml"]

    def start(self, timeout: float = 120) -> None:
        command = [*self.program(), *self.arguments()]
        self._stderr = open(os.path.join(self.workdir, f"{self.name}.stderr.log"), "w")
        self.process = subprocess.Popen(command, cwd=self.workdir, stdout=subprocess.PIPE, stderr=self._stderr,
                                        text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.output = LineReader(self.process.stdout, self.log_path)

        def printed_url() -> Optional[re.Match]:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n"
                                   f"{tail(self.log_path)}\n{tail(self._stderr.name)}")
            return self.output.find(r"widget: (http://\S+)")

        try:
            match = wait_until(printed_url, timeout, 0.2, f"{self.name} to print its widget URL")
        except BaseException:
            self.stop()
            raise
        self.url = match.group(1)
        token = re.search(r"[?&]token=([^&\s]+)", self.url)
        assert token, f"the printed URL has a token: {self.url}"
        self.token = token.group(1)
        port = re.match(r"http://[^/:]+:(\d+)/", self.url)
        assert port and int(port.group(1)) == self.port, f"{self.name} listens on the asked port: {self.url}"

    def stop(self, sig: int = signal.SIGTERM) -> Optional[int]:
        if self.process is None:
            return None
        code = stop_process(self.process, sig, 30)
        self._stderr.close()
        return code


class DemoServer(_CliServer):
    """``python -m backwardcompatibilityml demo --no-browser`` on a free port.

    With ``gate_folder`` the same command runs through ``gated_demo.py``, whose
    demo hands its sweep a training set that a :class:`~.sweep_gate.PassGate`
    on that folder can stall.
    """

    name = "demo"

    def __init__(self, workdir: str, epochs: int, stepsize: float = 0.25, executor: Optional[str] = None,
                 gate_folder: Optional[str] = None):
        super().__init__(workdir)
        self.epochs = epochs
        self.stepsize = stepsize
        self.executor = executor
        self.gate_folder = gate_folder
        self.folder = os.path.join(workdir, "sweep")

    def program(self) -> List[str]:
        if self.gate_folder is None:
            return super().program()
        return [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gated_demo.py"),
                self.gate_folder]

    def arguments(self) -> List[str]:
        arguments = ["demo", "--no-browser", "--port", str(self.port), "--epochs", str(self.epochs),
                     "--stepsize", str(self.stepsize), "--folder", self.folder]
        return arguments + (["--executor", self.executor] if self.executor else [])


class ServeServer(_CliServer):
    """``python -m backwardcompatibilityml serve FOLDER --no-browser`` on a free port: a saved sweep, no training."""

    name = "serve"

    def __init__(self, workdir: str, folder: str):
        super().__init__(workdir)
        self.folder = folder

    def arguments(self) -> List[str]:
        return ["serve", self.folder, "--no-browser", "--port", str(self.port)]


def notebook_copy(source: str, destination: str, replacements: Iterable[Tuple[str, str]] = ()) -> None:
    """A fresh copy of a notebook: outputs and execution counts removed, text replaced in code cells."""
    with open(source, "r", encoding="utf-8") as handle:
        notebook = json.load(handle)
    pending = list(replacements)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            source_text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for old, new in list(pending):
                if old in source_text:
                    source_text = source_text.replace(old, new)
                    pending.remove((old, new))
            cell["source"] = source_text
    assert not pending, f"the notebook no longer contains {[old for old, _ in pending]}"
    notebook.get("metadata", {}).pop("signature", None)
    with open(destination, "w", encoding="utf-8") as handle:
        json.dump(notebook, handle, indent=1)
