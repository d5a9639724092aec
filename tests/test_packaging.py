"""The package as users get it: a wheel built from pyproject.toml (PEP 621), installed and run.

The wheel is built offline from a copy of the source (``pip wheel --no-deps
--no-build-isolation``, with the setuptools of this environment), so the
working tree is not touched.
"""

from __future__ import annotations

import ast
import email
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "backwardcompatibilityml")
RESOURCES = os.path.join(PACKAGE, "widgets", "compatibility_analysis", "resources")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    tomllib = pytest.importorskip("tomli")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "LICENSE", "README.md"):
        shutil.copy2(os.path.join(ROOT, name), source / name)
    shutil.copytree(PACKAGE, source / "backwardcompatibilityml",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "--disable-pip-version-check", "--quiet", ".", "-w", str(out)],
        cwd=source, check=True, capture_output=True, text=True, timeout=600,
    )
    [name] = [name for name in os.listdir(out) if name.endswith(".whl")]
    return out / name


def read_metadata(archive: zipfile.ZipFile, dist_info: str) -> email.message.Message:
    return email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))


def test_pyproject_holds_the_metadata_and_setup_py_is_a_shim():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)["project"]
    assert project["name"] == "backwardcompatibilityml" and project["license"] == "MIT"
    assert project["requires-python"] == ">=3.9"
    assert {"mlflow", "demo", "pandas", "dev"} <= set(project["optional-dependencies"])
    assert project["scripts"]["bcml"] == "backwardcompatibilityml.__main__:main"
    assert project["urls"]["Repository"].startswith("https://")
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as handle:
        body = ast.parse(handle.read()).body
    statements = [ast.unparse(node) for node in body if not isinstance(node, ast.Expr) or
                  not isinstance(node.value, ast.Constant)]  # all but the docstring
    assert statements == ["from setuptools import setup", "setup()"]
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as handle:
        text = handle.read()
    assert text.startswith("MIT License") and "the backwardcompatibilityml authors" in text


def test_the_wheel_ships_types_licence_ui_bundle_and_openapi(wheel):
    from backwardcompatibilityml import __version__

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = f"backwardcompatibilityml-{__version__}.dist-info"
        assert "backwardcompatibilityml/py.typed" in names
        assert f"{dist_info}/licenses/LICENSE" in names
        resources = sorted(os.listdir(RESOURCES))
        assert {"widget.js", "widget.css"} <= set(resources)
        for name in resources:  # the UI bundle, the OpenAPI document, whatever the package keeps there
            assert f"backwardcompatibilityml/widgets/compatibility_analysis/resources/{name}" in names, name
        shipped_data = {name for name in names if name.endswith((".json", ".yaml", ".yml"))}
        in_source = {
            os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
            for folder, _, files in os.walk(PACKAGE) for name in files if name.endswith((".json", ".yaml", ".yml"))
        }
        assert in_source <= shipped_data
        metadata = read_metadata(archive, dist_info)
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert metadata["Name"] == "backwardcompatibilityml" and metadata["Version"] == __version__
    assert metadata["License-Expression"] == "MIT" and metadata["Requires-Python"] == ">=3.9"
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    assert any(url.startswith("Repository, https://") for url in metadata.get_all("Project-URL"))
    assert {"mlflow", "demo", "pandas", "dev"} <= set(metadata.get_all("Provides-Extra"))
    requires = metadata.get_all("Requires-Dist")
    for requirement in ("torch>=2.0", "pillow>=9.0", "waitress>=3.0", "pyarrow>=14"):
        assert requirement in requires
    assert "bcml = backwardcompatibilityml.__main__:main" in entry_points
    assert metadata.get_payload().startswith("# backwardcompatibilityml"), "the README is the long description"


def test_the_installed_wheel_runs_and_finds_its_resources(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
         "--quiet", "--target", str(target), str(wheel)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    probe = (
        "import importlib.resources as r, backwardcompatibilityml as b; "
        "root = r.files('backwardcompatibilityml'); "
        "bundle = root / 'widgets' / 'compatibility_analysis' / 'resources' / 'widget.js'; "
        "print(b.__file__); print(len(bundle.read_bytes())); print((root / 'py.typed').is_file())"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    where, size, typed = run.stdout.split()
    assert where.startswith(str(target)), "the wheel's copy is the one imported"
    assert int(size) == os.path.getsize(os.path.join(RESOURCES, "widget.js")) and typed == "True"
    version = subprocess.run([sys.executable, "-m", "backwardcompatibilityml", "--version"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600, check=True)
    from backwardcompatibilityml import __version__

    assert version.stdout.strip().endswith(__version__)
