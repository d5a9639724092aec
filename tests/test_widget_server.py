"""HTTP tests of the widget server: a real server on 127.0.0.1, real HTTP, real
(tiny) sweeps on sklearn's digits. No mock of the SweepManager."""

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
import torch
from flask import Flask, Response
from PIL import Image

from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from backwardcompatibilityml.sweep_management import SweepManager
from backwardcompatibilityml.widgets import CompatibilityAnalysis
from backwardcompatibilityml.widgets.compatibility_analysis.compatibility_analysis import (
    init_app_routes,
)
from backwardcompatibilityml.widgets.compatibility_analysis.images import placeholder_png
from backwardcompatibilityml.widgets.compatibility_analysis.server import (
    PortInUseError,
    WidgetServer,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = "/api/v1"
POINT_FIELDS = ("datapoint_index", "lambda_c", "training", "testing", "new-error",
                "strict-imitation", "performance", "h1_performance", "btc", "bec", "nfr",
                "pfr", "dataset_size")


# ---------------------------------------------------------------- helpers


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.body)

    def __repr__(self):
        return "<Answer %d %r>" % (self.status, self.body[:200])


def call(port, path, method="GET", token=None, headers=None, body=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        sent = dict(headers or {})
        if token is not None:
            sent["X-BCML-Token"] = token
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


def get(widget, path, **kw):
    return call(widget.port, API + path, token=widget.token, **kw)


def post(widget, path, **kw):
    return call(widget.port, API + path, method="POST", token=widget.token, **kw)


def assert_json_error(answer, status):
    assert answer.status == status, answer
    data = answer.json()
    assert list(data) == ["error"] and isinstance(data["error"], str) and data["error"]
    text = answer.body.decode("utf-8")
    assert "Traceback" not in text and "<html" not in text.lower() and REPO not in text
    assert answer.headers.get("cache-control") == "no-store"


def digits(n=300):
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    return (torch.tensor(features[:n] / 16.0, dtype=torch.float32),
            torch.tensor(labels[:n], dtype=torch.long))


def batches(x, y, lo, hi, size):
    return [(torch.arange(i, min(i + size, hi)), x[i:min(i + size, hi)], y[i:min(i + size, hi)])
            for i in range(lo, hi, size)]


def trained_h1(x, y, seed=0, steps=40):
    torch.manual_seed(seed)
    h1 = torch.nn.Linear(64, 10)
    optimizer = torch.optim.Adam(h1.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(h1(x), y).backward()
        optimizer.step()
    return h1


def new_h2(seed=1):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))


def make_widget(folder, h1, h2, data, epochs=1, stepsize=1.0, train=(0, 200), test=(200, 300),
                batch=50, **kw):
    x, y = data
    kw.setdefault("display_widget", False)
    return CompatibilityAnalysis(
        str(folder), epochs, h1, h2, batches(x, y, *train, batch), batches(x, y, *test, batch),
        batch, batch, lambda_c_stepsize=stepsize, OptimizerClass=torch.optim.SGD,
        optimizer_kwargs={"lr": 0.5}, NewErrorLossClass=BCCrossEntropyLoss,
        StrictImitationLossClass=StrictImitationCrossEntropyLoss, **kw)


def wait_done(widget, timeout=60):
    assert widget.sweep_manager.wait(timeout)


def png_bytes(value=77, size=(5, 4)):
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PNG")
    return buf.getvalue()


def image_callback(instance_id):
    kind = instance_id % 10
    if kind == 0:
        return png_bytes()
    if kind == 1:
        return Image.new("RGB", (6, 3), (1, 2, 3))
    if kind == 2:
        return np.linspace(0, 1, 16).reshape(4, 4)
    if kind == 3:
        return np.zeros((3, 2, 3), dtype=np.uint8)
    if kind == 4:
        return Response(png_bytes(9), mimetype="image/png")
    if kind == 5:
        return None
    if kind == 6:
        raise ValueError("boom in /home/someone/secret/path.png")
    if kind == 7:
        raise KeyError(instance_id)
    if kind == 8:
        return "not an image"
    return DATA[0][instance_id].reshape(8, 8).numpy() * 16.0  # digits scale 0..16


DATA = digits()


@pytest.fixture(scope="module")
def data():
    return DATA


@pytest.fixture(scope="module")
def widget(tmp_path_factory, data):
    """A widget whose (tiny) sweep has completed, started through the API."""
    # A weak h1 and a short training of h2: Progress, Common and Regress
    # regions are all non-empty in these datapoints.
    h1 = trained_h1(*data, steps=3)
    w = make_widget(tmp_path_factory.mktemp("sweep"), h1, new_h2(), data, batch=10,
                    get_instance_image_by_id=image_callback,
                    get_instance_metadata=lambda i: "digit sample %d" % i)
    answer = post(w, "/start_sweep")
    assert answer.status == 202, answer
    wait_done(w)
    yield w
    w.close()


# ---------------------------------------------------------------- happy paths


def test_status_after_the_sweep(widget):
    status = get(widget, "/sweep_status").json()
    assert status["state"] == "completed" and status["running"] is False
    assert status["percent_complete"] == 1.0
    assert status["completed_points"] == status["total_points"] == 8
    for key in ("lambda_c", "loss_family", "loss", "eta_seconds", "error"):
        assert key in status


def test_summary(widget):
    summary = get(widget, "/sweep_summary").json()
    assert summary["performance_metric"] == "model_accuracy"
    assert 0 <= summary["h1_performance"] <= 1
    assert [p["datapoint_index"] for p in summary["data"]] == list(range(8))
    for point in summary["data"]:
        assert set(POINT_FIELDS) <= set(point)


def test_compact_evaluation_data_matches_the_record(widget):
    for index in range(8):
        record = widget.sweep_manager.get_evaluation(index)
        answer = get(widget, "/evaluation_data/%d" % index)
        assert answer.status == 200
        assert answer.headers["cache-control"] == "no-store"
        data = answer.json()
        for key in POINT_FIELDS + ("h2_performance",):
            assert data[key] == record[key]
        assert data["performance_metric"] == record.get("performance_metric", "model_accuracy")
        w1, w2 = (set(ids) for ids in record["models_error_overlap"][:2])
        assert data["error_counts"] == {"h1": len(w1), "h2": len(w2)}
        assert data["regions"] == {"progress": len(w1 - w2), "common": len(w1 & w2),
                                   "regress": len(w2 - w1)}
        assert data["incompatible_total"] == data["regions"]["regress"]
        assert data["sorted_classes"] == record["sorted_classes"]
        for key in ("h1_accuracy_by_class", "h2_accuracy_by_class"):
            assert data[key] == [
                {"class": r["class"], "accuracy": r["accuracy"], "count": r["count"],
                 "error_count": len(r["error_instance_ids"])} for r in record[key]]
        assert data["h2_incompatible_count_by_class"] == [
            {"class": r["class"], "count": len(r["instance_ids"])}
            for r in record["h2_incompatible_instance_ids_by_class"]]
        assert b"error_instance" not in answer.body


def test_full_evaluation_data_is_the_stored_record(widget):
    for flag in ("1", "true"):
        answer = get(widget, "/evaluation_data/1?full=%s" % flag)
        assert answer.json() == json.loads(json.dumps(widget.sweep_manager.get_evaluation(1)))
    assert get(widget, "/evaluation_data/1?full=0").json() == get(
        widget, "/evaluation_data/1").json()


def expected_instances(record, region=None, class_=None, model=None):
    """The error instances a query should return, computed from the record
    directly with sets."""
    w1 = set(record["models_error_overlap"][0])
    w2 = set(record["models_error_overlap"][1])
    regions = {"progress": w1 - w2, "common": w1 & w2, "regress": w2 - w1}
    keep = w1 | w2 if region is None else regions[region]
    if model == "h1":
        keep &= w1
    elif model == "h2":
        keep &= w2
    items = []
    for instance_id in sorted(keep):
        entry = record["error_instances"][str(instance_id)]
        if class_ is not None and entry["ground_truth"] != class_:
            continue
        name = next(n for n, ids in regions.items() if instance_id in ids)
        items.append(dict(entry, region=name))
    return items


def page_through(widget, index, query, limit):
    items, offset, total = [], 0, None
    while True:
        answer = get(widget, "/evaluation_data/%d/instances?%slimit=%d&offset=%d"
                     % (index, query, limit, offset))
        data = answer.json()
        assert data["offset"] == offset and data["limit"] == limit
        total = data["total"] if total is None else total
        assert data["total"] == total
        items += data["items"]
        if len(data["items"]) < limit:
            return total, items
        offset += limit


def test_instance_paging_equals_the_stored_record(widget):
    seen_regions = set()
    for index in range(8):
        record = widget.sweep_manager.get_evaluation(index)
        for region in (None, "progress", "common", "regress"):
            for model in (None, "h1", "h2"):
                for class_ in (None, 3):
                    query = "".join("%s=%s&" % (k, v) for k, v in (
                        ("region", region), ("model", model), ("class", class_)) if v is not None)
                    expected = expected_instances(record, region, class_, model)
                    total, items = page_through(widget, index, query, limit=7)
                    assert total == len(expected)
                    assert items == expected
                    if region and expected:
                        seen_regions.add(region)
    assert seen_regions == {"progress", "common", "regress"}  # the data exercise them all


def test_instance_paging_default_page_and_sorting(widget):
    record = widget.sweep_manager.get_evaluation(1)
    everything = expected_instances(record)
    data = get(widget, "/evaluation_data/1/instances").json()
    assert data["limit"] == 50 and data["offset"] == 0 and data["total"] == len(everything)
    assert data["items"] == everything[:50]
    assert data["items"][0]["metadata"].startswith("digit sample ")
    for key in ("instance_id", "h1_prediction", "h2_prediction", "ground_truth"):
        for descending in (False, True):
            sort = ("-" if descending else "") + key
            _, items = page_through(widget, 1, "sort=%s&" % sort, limit=500)
            want = sorted(everything, key=lambda e: (-e[key] if descending else e[key],
                                                     e["instance_id"]))
            if key == "instance_id" and descending:
                want = sorted(everything, key=lambda e: -e["instance_id"])
            assert items == want, sort
    beyond = get(widget, "/evaluation_data/1/instances?offset=100000").json()
    assert beyond["items"] == [] and beyond["total"] == len(everything)


def test_instance_images(widget):
    def image(instance_id):
        answer = call(widget.port, API + "/instance_data/%d?token=%s" % (instance_id, widget.token))
        return answer

    expectations = {0: (5, 4), 1: (6, 3), 2: (4, 4), 3: (2, 3), 4: (5, 4), 9: (8, 8)}
    for instance_id, size in expectations.items():
        answer = image(instance_id)
        assert answer.status == 200, answer
        assert answer.headers["content-type"] == "image/png"
        assert answer.headers["cache-control"] == "no-store"
        assert Image.open(io.BytesIO(answer.body)).size == size
    assert image(5).body == placeholder_png()
    # The header works for images too.
    assert get(widget, "/instance_data/10").status == 200


def test_a_raising_image_callback_gives_json_500_and_the_server_keeps_serving(widget):
    answer = get(widget, "/instance_data/6")
    assert_json_error(answer, 500)
    message = answer.json()["error"]
    assert "ValueError" in message and "secret" not in message and "/home" not in message
    assert_json_error(get(widget, "/instance_data/8"), 500)  # unsupported return value
    assert_json_error(get(widget, "/instance_data/7"), 404)  # KeyError: unknown instance
    assert get(widget, "/sweep_status").status == 200
    assert get(widget, "/instance_data/0").status == 200


def test_default_image_is_the_placeholder(tmp_path, data):
    with make_widget(tmp_path, trained_h1(*data), new_h2(), data) as w:
        answer = get(w, "/instance_data/12345")
        assert answer.status == 200 and answer.body == placeholder_png()


def test_start_twice_is_409_and_cancel(tmp_path, data):
    with make_widget(tmp_path, trained_h1(*data), new_h2(), data, epochs=200,
                     stepsize=0.25, batch=10) as w:
        idle = post(w, "/cancel_sweep")
        assert idle.status == 200
        assert idle.json()["cancelled"] is False and idle.json()["status"]["state"] == "idle"
        started = post(w, "/start_sweep")
        assert started.status == 202
        assert started.json()["started"] is True
        assert started.json()["status"]["state"] == "running"
        assert_json_error(post(w, "/start_sweep"), 409)
        status = get(w, "/sweep_status").json()
        assert status["running"] is True
        cancelled = post(w, "/cancel_sweep")
        assert cancelled.status == 200 and cancelled.json()["cancelled"] is True
        wait_done(w)
        assert get(w, "/sweep_status").json()["state"] == "cancelled"
        assert post(w, "/cancel_sweep").json()["cancelled"] is False


class GatedAccuracy:
    """Accuracy from predictions that stalls its ``stall_at``-th call until the test opens the gate.

    The sweep computes h1's two performances first, then each job's two (training, testing):
    with the sequential executor, the 5th call is the second job's, made after the first job's
    results are stored. Stalling there leaves the sweep running with exactly those results.
    """

    def __init__(self, stall_at=5):
        self.calls = 0
        self.stall_at = stall_at
        self.stalled = threading.Event()
        self.gate = threading.Event()

    def __call__(self, model, dataset, device):  # pragma: no cover - never used: from_predictions is
        raise AssertionError("the sweep computes accuracy from predictions")

    def from_predictions(self, predicted, expected):
        self.calls += 1
        if self.calls == self.stall_at:
            self.stalled.set()
            assert self.gate.wait(60), "the test never opened the gate"
        return float(np.mean(np.asarray(predicted) == np.asarray(expected)))


def test_reads_during_a_sweep_are_whole(tmp_path, data):
    metric = GatedAccuracy()
    with make_widget(tmp_path, trained_h1(*data), new_h2(), data, epochs=3, stepsize=0.25, batch=10,
                     executor="sequential", performance_metric=metric) as w:
        started = post(w, "/start_sweep")
        assert started.status == 202 and started.json()["status"]["running"] is True
        try:
            assert metric.stalled.wait(60), "the sweep reached the second job's evaluation"
            status = get(w, "/sweep_status").json()
            assert status["running"] is True and 0 < status["percent_complete"] < 1
            summary = get(w, "/sweep_summary").json()
            assert len(summary["data"]) == 2, "the first job's two points, and nothing of the second"
            for point in summary["data"]:
                assert set(POINT_FIELDS) <= set(point)
                full = get(w, "/evaluation_data/%d?full=1" % point["datapoint_index"])
                assert full.status == 200
                assert len(full.json()["models_error_overlap"]) == 3
                compact = get(w, "/evaluation_data/%d" % point["datapoint_index"]).json()
                assert compact["datapoint_index"] == point["datapoint_index"]
            missing = [index for index in range(20) if index not in {p["datapoint_index"] for p in summary["data"]}]
            assert_json_error(get(w, "/evaluation_data/%d" % missing[0]), 404)
        finally:
            metric.gate.set()
        wait_done(w)
        assert len(get(w, "/sweep_summary").json()["data"]) == 20
        assert get(w, "/sweep_status").json()["percent_complete"] == 1.0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("text,status", [
    ("abc", 400), ("-1", 400), ("1.5", 400), ("0x1", 400), ("%201", 400),
    ("99", 404), ("9223372036854775807", 404), ("99999999999999999999999999", 404),
])
def test_bad_evaluation_ids(widget, text, status):
    assert_json_error(get(widget, "/evaluation_data/%s" % text), status)
    assert_json_error(get(widget, "/evaluation_data/%s/instances" % text), status)


@pytest.mark.parametrize("text,status", [
    ("abc", 400), ("-1", 400), ("1e3", 400), ("99999999999999999999999999", 404),
])
def test_bad_instance_ids(widget, text, status):
    assert_json_error(get(widget, "/instance_data/%s" % text), status)


@pytest.mark.parametrize("query", [
    "region=everything", "region=REGRESS", "model=h3", "class=x", "class=1.0",
    "sort=name", "sort=--instance_id", "sort=instance_id-", "offset=-1", "offset=x",
    "offset=1e3", "offset=99999999999999999999999", "limit=0", "limit=501", "limit=-5",
    "limit=abc",
])
def test_bad_paging_parameters(widget, query):
    assert_json_error(get(widget, "/evaluation_data/1/instances?" + query), 400)


def test_bad_full_flag(widget):
    assert_json_error(get(widget, "/evaluation_data/1?full=maybe"), 400)


def test_limit_is_capped_at_500(widget):
    assert get(widget, "/evaluation_data/1/instances?limit=500").json()["limit"] == 500


@pytest.mark.parametrize("method,path", [
    ("GET", "/start_sweep"), ("GET", "/cancel_sweep"), ("POST", "/sweep_status"),
    ("POST", "/sweep_summary"), ("PUT", "/evaluation_data/1"), ("DELETE", "/evaluation_data/1"),
    ("POST", "/evaluation_data/1/instances"), ("POST", "/instance_data/1"),
    ("PATCH", "/start_sweep"),
])
def test_wrong_methods(widget, method, path):
    answer = call(widget.port, API + path, method=method, token=widget.token)
    assert_json_error(answer, 405)
    assert "allow" in answer.headers


@pytest.mark.parametrize("path", ["/nope", "/evaluation_data", "/evaluation_data/1/x",
                                  "/instance_data", ""])
def test_unknown_routes(widget, path):
    assert_json_error(get(widget, path), 404)


def test_unknown_route_outside_the_api_is_json_too(widget):
    assert_json_error(call(widget.port, "/favicon.ico"), 404)


ROUTES = [("POST", "/start_sweep"), ("POST", "/cancel_sweep"), ("GET", "/sweep_status"),
          ("GET", "/sweep_summary"), ("GET", "/evaluation_data/1"),
          ("GET", "/evaluation_data/1/instances"), ("GET", "/instance_data/1"),
          ("GET", "/does_not_exist")]


@pytest.mark.parametrize("method,path", ROUTES)
def test_missing_or_wrong_token_is_403(widget, method, path):
    assert_json_error(call(widget.port, API + path, method=method), 403)
    assert_json_error(call(widget.port, API + path, method=method, token="wrong"), 403)
    assert_json_error(call(widget.port, API + path, method=method, token=""), 403)
    assert_json_error(call(widget.port, API + path, method=method,
                           token=widget.token[:-1]), 403)
    assert_json_error(call(widget.port, API + path + "?token=nope", method=method), 403)
    assert_json_error(call(widget.port, API + path, method=method,
                           headers={"X-BCML-Token": "\u00e9t\u00e9".encode().decode("latin-1")}),
                      403)
    assert get(widget, "/sweep_status").json()["state"] == "completed"  # nothing happened


def test_token_in_the_query_only_where_a_browser_cannot_send_a_header(widget):
    # An <img> cannot send a header: GET instance_data takes ?token=.
    image = call(widget.port, API + "/instance_data/0?token=" + widget.token)
    assert image.status == 200 and image.headers["content-type"] == "image/png"
    assert call(widget.port, API + "/instance_data/0?token=" + widget.token,
                method="HEAD").status == 200
    # Everywhere else the query parameter is ignored: a cross-site form or
    # link cannot act with it.
    for method, path in ROUTES:
        if path.startswith("/instance_data"):
            continue
        answer = call(widget.port, API + path + "?token=" + widget.token, method=method)
        assert_json_error(answer, 403)
    assert_json_error(call(widget.port, API + "/instance_data/0?token=" + widget.token,
                           method="POST"), 403)
    assert_json_error(call(widget.port, API + "/openapi.json?token=" + widget.token), 403)
    assert get(widget, "/sweep_status").json()["state"] == "completed"  # nothing happened


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:%d",
                                  "127.0.0.1.evil.example.com", "localhost.evil.example.com",
                                  "192.168.1.20:%d", "[::2]:%d", "0.0.0.0:%d"])
def test_foreign_host_header_is_403(widget, host):
    if "%d" in host:
        host = host % widget.port
    for path in ("/sweep_status", "/sweep_summary"):
        assert_json_error(get(widget, path, headers={"Host": host}), 403)
    assert_json_error(call(widget.port, "/?token=" + widget.token, headers={"Host": host}), 403)


@pytest.mark.parametrize("host", ["127.0.0.1:%d", "localhost:%d", "LOCALHOST", "[::1]:%d",
                                  "127.0.0.2:%d"])
def test_loopback_host_headers_are_accepted(widget, host):
    if "%d" in host:
        host = host % widget.port
    assert get(widget, "/sweep_status", headers={"Host": host}).status == 200


def test_cors_preflight_passes_without_token_and_answers_carry_cors(widget):
    origin = "http://127.0.0.1:8888"
    preflight = call(widget.port, API + "/sweep_status", method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-bcml-token"})
    assert preflight.status == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "x-bcml-token" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers
    post_preflight = call(widget.port, API + "/start_sweep", method="OPTIONS", headers={
        "Origin": "null", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "X-BCML-Token, Accept, Cache-Control, Pragma"})
    assert post_preflight.status == 200
    assert "POST" in post_preflight.headers["access-control-allow-methods"]
    allowed = post_preflight.headers["access-control-allow-headers"].lower()
    assert all(h in allowed for h in ("x-bcml-token", "accept", "cache-control", "pragma"))
    answer = get(widget, "/sweep_status", headers={"Origin": origin})
    assert answer.headers["access-control-allow-origin"] == "*"
    # Any origin gets "*" (never an echo), and never credentials: the token,
    # not the origin, guards the API (docs/api.md).
    for other in ("http://evil.example.com", "null", "https://ml.azure.com"):
        answer = get(widget, "/sweep_status", headers={"Origin": other})
        assert answer.status == 200
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers
    refused = call(widget.port, API + "/sweep_status", headers={"Origin": origin})
    assert refused.status == 403 and "access-control-allow-origin" in refused.headers
    # A preflight is still subject to the Host check.
    assert call(widget.port, API + "/sweep_status", method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET",
        "Host": "evil.example.com"}).status == 403


def raw_exchange(port, data):
    """Send raw bytes, read the reply until the server closes the connection.
    A server that rejects a request before reading all of it resets the
    connection after its answer; what arrived before the reset is kept."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return reply
            if not chunk:
                return reply
            reply += chunk


def assert_raw_json_error(reply, status):
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and (b" %d " % status) in head.split(b"\r\n")[0], head
    assert b"application/json" in head and b"no-store" in head
    assert list(json.loads(body)) == ["error"]


def test_malformed_http_gets_a_json_answer(widget):
    # Headers over the limit (64 KiB): the HTTP layer answers before Flask.
    reply = raw_exchange(widget.port, b"GET /api/v1/sweep_status HTTP/1.1\r\nHost: x\r\n"
                         b"X-Long: " + b"a" * 70000 + b"\r\n\r\n")
    assert_raw_json_error(reply, 431)
    # A request line that is not HTTP.
    assert_raw_json_error(raw_exchange(widget.port, b"THIS IS NOT HTTP\r\n\r\n"), 400)
    # A body over the limit (the API takes no body at all).
    reply = raw_exchange(widget.port, b"POST /api/v1/cancel_sweep HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 1000000\r\n\r\n")
    assert_raw_json_error(reply, 413)
    assert get(widget, "/sweep_status").status == 200


def test_standalone_page(widget, tmp_path):
    page = call(widget.port, "/?token=" + widget.token)
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    text = page.body.decode("utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert 'class="bcml-widget"' in text
    assert_json_error(call(widget.port, "/"), 403)
    assert_json_error(call(widget.port, "/?token=nope"), 403)
    assert widget.url == "http://127.0.0.1:%d/?token=%s" % (widget.port, widget.token)
    if "mountWidget(root,config)" in text:  # the bundle is built
        config = json.loads(text.split("var config=", 1)[1].split(";var lib", 1)[0])
        assert config == {"environment_type": "local", "base_url": None, "port": widget.port,
                          "token": widget.token}


def test_requests_are_not_logged_to_the_notebook(widget, capfd):
    capfd.readouterr()
    for path in ("/sweep_status", "/evaluation_data/1?full=1", "/nope"):
        get(widget, path)
    call(widget.port, API + "/instance_data/1?token=" + widget.token)
    out, err = capfd.readouterr()
    assert "GET" not in out + err and widget.token not in out + err


def test_widget_attributes(widget):
    assert 5000 <= widget.port <= 5099
    assert len(widget.token) >= 32 and widget.token == widget.app.config["BCML_TOKEN"]
    assert widget.environment["token"] == widget.token
    assert widget.environment["port"] == widget.port
    assert isinstance(widget.sweep_manager, SweepManager)
    assert widget.token not in repr(widget)


# ---------------------------------------------------------------- lifecycle


def test_close_frees_the_port_and_context_manager(tmp_path, data):
    w = make_widget(tmp_path, trained_h1(*data), new_h2(), data)
    port = w.port
    # A keep-alive connection open at close time must not keep serving.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", API + "/sweep_status", headers={"X-BCML-Token": w.token})
    assert conn.getresponse().read()
    began = time.perf_counter()
    w.close()
    assert time.perf_counter() - began < 3
    assert not w.running
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", API + "/sweep_status", headers={"X-BCML-Token": w.token})
        conn.getresponse().read()
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    # Free again for a new listener. (Connections the server closed first sit
    # in TIME_WAIT for a minute; like every common server, a new listener sets
    # SO_REUSEADDR, which Linux grants only when no one listens on the port.)
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", port))
    probe.listen(1)
    probe.close()
    w.close()  # idempotent
    with make_widget(tmp_path / "again", trained_h1(*data), new_h2(), data, port=port) as again:
        assert again.port == port
        assert get(again, "/sweep_status").status == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_explicit_port_taken_is_a_clear_error(tmp_path, data):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(PortInUseError, match=str(port)) as info:
            make_widget(tmp_path, trained_h1(*data), new_h2(), data, port=port)
        assert info.value.port == port
        assert isinstance(info.value, RuntimeError)
    finally:
        blocker.close()


def test_bad_port_values(tmp_path, data):
    with pytest.raises(TypeError):
        make_widget(tmp_path, trained_h1(*data), new_h2(), data, port="5000")
    with pytest.raises(ValueError):
        make_widget(tmp_path, trained_h1(*data), new_h2(), data, port=70000)


def test_default_port_range_skips_taken_ports(data, tmp_path):
    with make_widget(tmp_path / "a", trained_h1(*data), new_h2(), data) as first, \
            make_widget(tmp_path / "b", trained_h1(*data), new_h2(), data) as second:
        assert 5000 <= first.port <= 5099 and 5000 <= second.port <= 5099
        assert first.port != second.port


def test_server_accepts_connections_when_the_constructor_returns():
    app = Flask(__name__)

    @app.route("/ping")
    def ping():
        return "pong"

    for _ in range(10):
        with WidgetServer(app, port=0) as server:
            answer = call(server.port, "/ping", timeout=5)
            assert answer.status == 200 and answer.body == b"pong"


def test_two_widgets_side_by_side_on_two_folders(tmp_path, data):
    x, y = data
    good_h1 = trained_h1(x, y)
    poor_h1 = torch.nn.Linear(64, 10)  # untrained
    torch.nn.init.zeros_(poor_h1.weight)
    torch.nn.init.zeros_(poor_h1.bias)  # predicts class 0 everywhere
    first = make_widget(tmp_path / "first", good_h1, new_h2(1), data)
    second = make_widget(tmp_path / "second", poor_h1, new_h2(2), data)
    try:
        assert first.running and second.running
        assert first.port != second.port and first.token != second.token
        assert first.app is not second.app
        assert post(first, "/start_sweep").status == 202
        wait_done(first)
        assert post(second, "/start_sweep").status == 202
        wait_done(second)
        h1_first = get(first, "/evaluation_data/1").json()["h1_performance"]
        h1_second = get(second, "/evaluation_data/1").json()["h1_performance"]
        expected_poor = float((y[200:300] == 0).float().mean())
        assert h1_second == pytest.approx(expected_poor)
        assert h1_first > 0.5 > h1_second
        # Each token opens only its own widget.
        assert_json_error(call(first.port, API + "/sweep_status", token=second.token), 403)
        assert_json_error(call(second.port, API + "/sweep_status", token=first.token), 403)
        assert get(first, "/sweep_status").status == 200
    finally:
        first.close()
        second.close()


def test_reinstantiation_on_the_same_folder_replaces_the_earlier_widget(tmp_path, data):
    x, y = data
    poor_h1 = torch.nn.Linear(64, 10)
    torch.nn.init.zeros_(poor_h1.weight)
    torch.nn.init.zeros_(poor_h1.bias)  # predicts class 0 everywhere
    first = make_widget(tmp_path / "sweep", trained_h1(x, y), new_h2(1), data)
    port = first.port
    # A re-run with a wrong argument raises and leaves the earlier widget alone.
    with pytest.raises(ValueError, match="number_of_epochs"):
        make_widget(tmp_path / "sweep", poor_h1, new_h2(2), data, epochs=0)
    assert first.running and get(first, "/sweep_status").status == 200
    # "Re-running the cell": same folder (another spelling of it), new models.
    second = make_widget(tmp_path / "sweep" / ".." / "sweep", poor_h1, new_h2(2), data)
    try:
        assert not first.running and second.running
        if second.port == port:  # the freed port was the first free one again
            assert_json_error(call(port, API + "/sweep_status", token=first.token), 403)
        else:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert post(second, "/start_sweep").status == 202
        wait_done(second)
        expected_poor = float((y[200:300] == 0).float().mean())
        assert get(second, "/evaluation_data/1").json()["h1_performance"] == pytest.approx(
            expected_poor)
    finally:
        first.close()
        second.close()


def test_same_explicit_port_again_takes_over_from_the_earlier_widget(tmp_path, data):
    first = make_widget(tmp_path / "a", trained_h1(*data), new_h2(), data, port=0)
    port = first.port
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = make_widget(tmp_path / "b", trained_h1(*data), new_h2(), data, port=port)
    try:
        assert any(str(port) in str(w.message) for w in caught)
        assert not first.running and second.port == port
        assert get(second, "/sweep_status").status == 200
        assert_json_error(call(port, API + "/sweep_status", token=first.token), 403)
    finally:
        second.close()


def test_from_sweep_manager_serves_a_saved_folder(widget):
    saved = SweepManager.open_folder(widget.sweep_manager.folder_name)
    with CompatibilityAnalysis.from_sweep_manager(saved, display_widget=False) as w:
        assert get(w, "/sweep_summary").json()["data"] == get(widget, "/sweep_summary").json()["data"]
        assert get(w, "/evaluation_data/3").json() == get(widget, "/evaluation_data/3").json()
        assert_json_error(post(w, "/start_sweep"), 409)  # read-only


def test_init_app_routes_on_a_plain_flask_app(widget):
    app = Flask(__name__)

    @app.route("/hello")
    def hello():
        return "hi"

    @app.route("/")
    def home():
        return "home"

    token = init_app_routes(app, widget.sweep_manager)
    assert token and app.config["BCML_TOKEN"] == token
    client = app.test_client()
    assert client.get("/hello").data == b"hi"  # the app's own routes are untouched
    assert client.get("/").data == b"home"
    assert client.get("/nothing-here").status_code == 404
    assert not client.get("/nothing-here").is_json  # its own error pages too
    assert client.get("/api/v1/sweep_status").status_code == 403
    answer = client.get("/api/v1/sweep_status", headers={"X-BCML-Token": token})
    assert answer.status_code == 200 and answer.get_json()["state"] == "completed"
    assert client.get("/api/v1/sweep_status?token=" + token).status_code == 403
    assert client.get("/api/v1/sweep_status", headers={"X-BCML-Token": token,
                                                       "Host": "evil.example.com"}).status_code == 403
    with pytest.raises(ValueError):
        init_app_routes(app, widget.sweep_manager)
    other = Flask(__name__)
    init_app_routes(other, widget.sweep_manager, token="given-token")
    assert other.test_client().get(
        "/api/v1/sweep_summary", headers={"X-BCML-Token": "given-token"}).status_code == 200


def test_display_in_ipython_and_outside(tmp_path, data, capsys, monkeypatch):
    import IPython.display

    from backwardcompatibilityml.widgets.compatibility_analysis import display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    with make_widget(tmp_path, trained_h1(*data), new_h2(), data,
                     display_widget=True) as w:  # plain Python: prints the URL
        assert w.url in capsys.readouterr().out
        assert shown == []
        monkeypatch.setattr(display, "in_ipython", lambda: True)
        w.show()
        assert len(shown) == 1 and 'class="bcml-widget"' in shown[0].data
        assert w.token in shown[0].data and "mountWidget" in shown[0].data


# ---------------------------------------------------------------- interpreter exit


EXIT_SCRIPT = textwrap.dedent("""
    import http.client, sys, tempfile, torch
    sys.path.insert(0, %(repo)r)
    from backwardcompatibilityml.widgets import CompatibilityAnalysis
    from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    x = torch.rand(200, 64); y = torch.randint(0, 10, (200,))
    data = [(torch.arange(i, i + 10), x[i:i + 10], y[i:i + 10]) for i in range(0, 200, 10)]
    torch.manual_seed(0)
    w = CompatibilityAnalysis(tempfile.mkdtemp(), %(epochs)d, torch.nn.Linear(64, 10),
        torch.nn.Linear(64, 10), data, data, 10, 10, lambda_c_stepsize=0.25,
        OptimizerClass=torch.optim.SGD, optimizer_kwargs={"lr": 0.1},
        NewErrorLossClass=BCCrossEntropyLoss,
        StrictImitationLossClass=StrictImitationCrossEntropyLoss, display_widget=False)
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=10)
    conn.request("%(method)s", "/api/v1/%(route)s", headers={"X-BCML-Token": w.token})
    assert conn.getresponse().read()
    conn.request("GET", "/api/v1/sweep_status", headers={"X-BCML-Token": w.token})
    print(conn.getresponse().read().decode())
    # exit with the widget alive, a keep-alive connection open, maybe a sweep running
""")


@pytest.mark.parametrize("method,route,epochs", [("GET", "sweep_status", 1),
                                                 ("POST", "start_sweep", 500)])
def test_interpreter_exit_with_a_live_widget_is_clean(method, route, epochs):
    script = EXIT_SCRIPT % {"repo": REPO, "method": method, "route": route, "epochs": epochs}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    for bad in ("Traceback", "Exception ignored", "Fatal Python error", "Segmentation"):
        assert bad not in result.stderr, result.stderr[-3000:]
    status = json.loads(result.stdout.strip().splitlines()[-1])
    assert status["running"] is (route == "start_sweep")


def test_a_raising_metadata_callback_is_named_in_a_json_500(tmp_path, data):
    def metadata(instance_id):
        raise LookupError(f"no row for {instance_id} in /srv/labels.csv")

    with make_widget(tmp_path, trained_h1(*data, steps=3), new_h2(), data, batch=10,
                     get_instance_metadata=metadata) as w:
        assert post(w, "/start_sweep").status == 202
        wait_done(w)
        assert get(w, "/sweep_status").json()["state"] == "completed", "training needs no metadata"
        answer = get(w, "/evaluation_data/1/instances")
        assert_json_error(answer, 500)
        message = answer.json()["error"]
        assert "get_instance_metadata raised LookupError" in message
        assert "/srv" not in message and "Traceback" not in message
        assert get(w, "/evaluation_data/1").status == 200, "the compact view needs no metadata"
