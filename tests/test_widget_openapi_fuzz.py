"""A bounded schemathesis run, driven by the package's OpenAPI document,
against a real widget server on 127.0.0.1 (a real, tiny sweep behind it and a
user image callback that sometimes raises).

Each operation gets schema-valid (positive) and schema-invalid (negative)
requests, deterministically (``derandomize``), and every answer must:

- conform to the document (status documented, content type, body schema,
  schemathesis's checks: valid data accepted, invalid data rejected, a wrong
  token refused);
- be a 500 only where the document allows it: a failing user callback of
  ``instance_data``, whose message names the callback;
- carry a JSON ``{"error": ...}`` body whenever it is an error;
- hold no traceback and no file path.
"""

import collections
import json
import os
import re
import sys
import tempfile
import time

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import ignored_auth  # noqa: E402

from backwardcompatibilityml.widgets.compatibility_analysis.openapi import (  # noqa: E402
    openapi_document,
)

from test_widget_server import REPO, digits, make_widget, new_h2, post, trained_h1, wait_done  # noqa: E402

EXAMPLES_PER_MODE = 30
DATA = digits()
_PATHS = [re.escape(p) for p in {REPO, sys.prefix, os.path.realpath(tempfile.gettempdir()),
                                 tempfile.gettempdir(), os.path.expanduser("~")} if len(p) > 1]
LEAKS = re.compile("|".join(["Traceback \\(most recent call last\\)", 'File "', "site-packages",
                             "/home/"] + _PATHS))


def image_callback(instance_id):
    if instance_id % 2 == 1:
        raise ValueError("cannot read /home/someone/images/%d.png" % instance_id)
    if instance_id % 4 == 2:
        raise KeyError(instance_id)
    return DATA[0][instance_id % len(DATA[0])].reshape(8, 8).numpy()


@pytest.fixture(scope="module")
def widget(tmp_path_factory):
    w = make_widget(tmp_path_factory.mktemp("fuzz"), trained_h1(*DATA, steps=3), new_h2(), DATA,
                    batch=25, get_instance_image_by_id=image_callback)
    assert post(w, "/start_sweep").status == 202
    wait_done(w)
    yield w
    w.sweep_manager.cancel_sweep()
    w.sweep_manager.wait(60)
    w.close()


def check_answer(operation, response, problems):
    """The project's own rules, on top of schemathesis's checks."""
    status = response.status_code
    content_type = (response.headers.get("content-type") or [""])[0]  # lowercase keys, lists
    text = response.content.decode("utf-8", "replace")
    if LEAKS.search(text):
        problems["traceback or path"].append((operation, status, LEAKS.search(text).group(0)))
    if status >= 400:
        try:
            body = json.loads(text)
            assert content_type.startswith("application/json")
            assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
        except (AssertionError, ValueError):
            problems["non-JSON error"].append((operation, status, text[:200]))
    if status >= 500:
        documented = (operation == "GET /api/v1/instance_data/{instance_id}" and status == 500
                      and "get_instance_image_by_id" in text)
        if not documented:
            problems["undocumented 5xx"].append((operation, status, text[:200]))


def test_fuzz_the_api_from_its_openapi_document(widget):
    # An explicit configuration (no schemathesis.toml discovered from the
    # working directory). The token is sent by us with every request;
    # schemathesis's ignored_auth check sends requests without it. Unknown
    # query parameters are ignored by design (cache busters), so none are
    # generated.
    config = schemathesis.config.SchemathesisConfig()
    schema = schemathesis.openapi.from_dict(openapi_document(), config=config)
    schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)
    base_url = "http://127.0.0.1:%d" % widget.port
    headers = {"X-BCML-Token": widget.token}
    counts = collections.Counter()
    problems = {"traceback or path": [], "non-JSON error": [], "undocumented 5xx": []}
    failures = []
    began = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    # The reads first, on the finished sweep; then start (it trains again) and cancel.
    operations.sort(key=lambda operation: operation.method.upper() == "POST")
    for operation in operations:
        excluded = [not_a_server_error]  # replaced by check_answer: callback 500s are documented
        if len(operation.definition.raw.get("security", [None])) > 1:
            # The token may come in the header or the query: a wrong query
            # token next to our right header is rightly accepted.
            excluded.append(ignored_auth)
        modes = [GenerationMode.POSITIVE]
        if operation.definition.raw.get("parameters"):
            modes.append(GenerationMode.NEGATIVE)  # invalid values of its parameters
        for mode in modes:

            @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None,
                      derandomize=True, phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call(base_url=base_url, headers=headers, timeout=30)
                counts[(operation.label, mode.value, response.status_code)] += 1
                check_answer(operation.label, response, problems)
                case.validate_response(response, headers=headers, excluded_checks=excluded)

            try:
                run()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as error:  # a schemathesis failure group: report them all
                failures.append("%s (%s): %s" % (operation.label, mode.value, str(error)[:1500]))
    elapsed = time.monotonic() - began
    total = sum(counts.values())
    by_status = collections.Counter()
    for (_, _, status), n in counts.items():
        by_status[status] += n
    print("\nfuzz: %d requests in %.1f s over %d operations; by status %s"
          % (total, elapsed, len({k[0] for k in counts}), dict(sorted(by_status.items()))))
    for key in sorted(counts):
        print("fuzz:   %s %s -> %d: %d" % (key + (counts[key],)))
    print("fuzz: 500s from failing callbacks: %d; undocumented 5xx: %d; non-JSON errors: %d; "
          "tracebacks or paths: %d; schemathesis failures: %d"
          % (counts_500(counts), len(problems["undocumented 5xx"]), len(problems["non-JSON error"]),
             len(problems["traceback or path"]), len(failures)))
    assert not failures, "\n\n".join(failures)
    assert not any(problems.values()), problems
    assert len({label for label, _, _ in counts}) == len(openapi_operations())
    assert total >= 10 * 5
    assert by_status[200] and by_status[400] and by_status[404]
    assert counts_500(counts) > 0, "the failing image callback was reached"
    assert elapsed < 60


def openapi_operations():
    return [(path, method) for path, item in openapi_document()["paths"].items() for method in item]


def counts_500(counts):
    return sum(n for (label, _, status), n in counts.items() if status == 500)
