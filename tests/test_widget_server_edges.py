"""Edges of the REST API over real HTTP on 127.0.0.1: ids with leading
zeros, ``//`` paths, the OpenAPI document, what the status and summary say
(and do not say) over HTTP."""

import json

import pytest
import torch

from backwardcompatibilityml.sweep_management import SweepManager
from backwardcompatibilityml.widgets import CompatibilityAnalysis
from backwardcompatibilityml.widgets.compatibility_analysis.openapi import openapi_document

from test_widget_server import (
    API,
    REPO,
    assert_json_error,
    call,
    digits,
    get,
    make_widget,
    new_h2,
    post,
    trained_h1,
    wait_done,
)

DATA = digits()
SEEN_IMAGE_IDS = []


def image_callback(instance_id):
    SEEN_IMAGE_IDS.append(instance_id)
    return DATA[0][instance_id].reshape(8, 8).numpy()


@pytest.fixture(scope="module")
def widget(tmp_path_factory):
    w = make_widget(tmp_path_factory.mktemp("edges"), trained_h1(*DATA, steps=3), new_h2(), DATA,
                    batch=20, get_instance_image_by_id=image_callback)
    assert post(w, "/start_sweep").status == 202
    wait_done(w)
    yield w
    w.close()


@pytest.fixture(scope="module")
def read_only(widget):
    saved = SweepManager.open_folder(widget.sweep_manager.folder_name)
    with CompatibilityAnalysis.from_sweep_manager(saved, display_widget=False) as w:
        yield w


# ---------------------------------------------------------------- ids


@pytest.mark.parametrize("text", ["007", "0007", "00000000000000000000000000007"])
def test_ids_with_leading_zeros_are_the_same_datapoint(widget, text):
    expected = get(widget, "/evaluation_data/7").json()
    assert get(widget, "/evaluation_data/%s" % text).json() == expected
    assert get(widget, "/evaluation_data/%s/instances?limit=5" % text).json() == get(
        widget, "/evaluation_data/7/instances?limit=5").json()


def test_zero_and_instance_ids_with_leading_zeros(widget):
    assert get(widget, "/evaluation_data/000").json()["datapoint_index"] == 0
    del SEEN_IMAGE_IDS[:]
    answer = get(widget, "/instance_data/0042")
    assert answer.status == 200 and answer.headers["content-type"] == "image/png"
    assert SEEN_IMAGE_IDS == [42]


@pytest.mark.parametrize("text,status", [("7\n", 400), ("%0A7", 400), ("7%0A", 400),
                                         ("0" * 30 + "99", 404)])
def test_ids_that_are_almost_numbers(widget, text, status):
    assert_json_error(get(widget, "/evaluation_data/%s" % text.replace("\n", "%0A")), status)


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize("path", ["/api/v1//sweep_status", "/api//v1/sweep_status",
                                  "/api/v1/evaluation_data//1", "/api/v1/sweep_status//",
                                  "/api/v1/evaluation_data/1//instances"])
def test_double_slash_paths_answer_json_not_a_redirect(widget, path):
    # Werkzeug alone would answer these with an HTML 308 redirect.
    assert_json_error(call(widget.port, path, token=widget.token), 404)
    assert_json_error(call(widget.port, path), 403)  # the token is checked first
    posted = call(widget.port, path, method="POST", token=widget.token)
    assert_json_error(posted, posted.status)
    assert posted.status in (404, 405)


@pytest.mark.parametrize("path", ["//api/v1/sweep_status", "///api/v1/sweep_status"])
def test_leading_slashes_are_collapsed(widget, path):
    answer = call(widget.port, path, token=widget.token)
    assert answer.status == 200 and answer.json() == get(widget, "/sweep_status").json()
    assert_json_error(call(widget.port, path), 403)


def test_double_slash_outside_the_api_is_json_too(widget):
    assert_json_error(call(widget.port, "//favicon.ico"), 404)
    assert_json_error(call(widget.port, "//"), 403)  # the standalone page needs the token


# ---------------------------------------------------------------- OpenAPI


def test_the_openapi_document_is_served_with_the_token(widget):
    answer = get(widget, "/openapi.json")
    assert answer.status == 200 and answer.headers["cache-control"] == "no-store"
    assert answer.json() == openapi_document()
    assert answer.json()["openapi"].startswith("3.")
    assert_json_error(call(widget.port, API + "/openapi.json"), 403)


def test_the_openapi_document_describes_every_route(widget):
    document = openapi_document()
    described = {(path, method.upper()) for path, item in document["paths"].items()
                 for method in item}
    served = set()
    for rule in widget.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<id_text>", "{id}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    normalised = {(path.replace("{datapoint_index}", "{id}").replace("{instance_id}", "{id}"),
                   method) for path, method in described}
    assert normalised == served
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "403" in operation["responses"], (path, method)
            assert operation.get("summary"), (path, method)


def status_keys(document):
    return set(document["components"]["schemas"]["Status"]["properties"])


def test_status_over_http_is_the_documented_fields(widget):
    status = get(widget, "/sweep_status").json()
    assert set(status) == status_keys(openapi_document())
    for key in ("executor", "executor_note", "running_jobs"):
        assert key in status
    assert status["state"] == "completed" and status["executor"]


def failing_metric(model, dataset, device):
    raise RuntimeError("metric exploded in /home/someone/secret.py")


def test_a_failed_sweep_sends_no_traceback_over_http(tmp_path):
    with make_widget(tmp_path, trained_h1(*DATA), new_h2(), DATA,
                     performance_metric=failing_metric) as w:
        started = post(w, "/start_sweep")
        assert started.status == 202
        wait_done(w)
        answers = [get(w, "/sweep_status"), post(w, "/cancel_sweep"), post(w, "/start_sweep")]
        wait_done(w)
        status = answers[0].json()
        assert status["state"] == "failed" and status["error"]
        assert set(status) == status_keys(openapi_document())
        for answer in answers + [started]:
            text = answer.body.decode("utf-8")
            assert "error_traceback" not in text and "Traceback" not in text
            assert "File \"" not in text and REPO not in text


# ---------------------------------------------------------------- images flag


def test_the_summary_says_whether_instances_have_images(widget, read_only, tmp_path):
    assert get(widget, "/sweep_summary").json()["instance_images"] is True
    summary = get(read_only, "/sweep_summary").json()
    assert summary["instance_images"] is False
    assert summary["data"] == get(widget, "/sweep_summary").json()["data"]
    with make_widget(tmp_path, trained_h1(*DATA), new_h2(), DATA) as plain:
        assert get(plain, "/sweep_summary").json()["instance_images"] is False


def test_post_with_the_token_in_the_query_is_refused(widget):
    running_before = widget.sweep_manager.is_running()
    for route in ("/cancel_sweep", "/start_sweep"):
        answer = call(widget.port, API + route + "?token=" + widget.token, method="POST")
        assert_json_error(answer, 403)
    assert widget.sweep_manager.is_running() == running_before
    assert json.loads(get(widget, "/sweep_status").body)["state"] == "completed"


# ---------------------------------------------------------------- signature


def test_the_documented_signature_and_its_defaults(tmp_path):
    import inspect

    from backwardcompatibilityml.metrics import model_accuracy

    parameters = inspect.signature(CompatibilityAnalysis).parameters
    documented = [
        ("folder_name", inspect.Parameter.empty), ("number_of_epochs", inspect.Parameter.empty),
        ("h1", inspect.Parameter.empty), ("h2", inspect.Parameter.empty),
        ("training_set", inspect.Parameter.empty), ("test_set", inspect.Parameter.empty),
        ("batch_size_train", inspect.Parameter.empty), ("batch_size_test", inspect.Parameter.empty),
        ("lambda_c_stepsize", 0.25), ("OptimizerClass", None), ("optimizer_kwargs", None),
        ("NewErrorLossClass", None), ("StrictImitationLossClass", None),
        ("performance_metric", model_accuracy), ("port", None), ("new_error_loss_kwargs", None),
        ("strict_imitation_loss_kwargs", None), ("get_instance_image_by_id", None),
        ("get_instance_metadata", None), ("device", "cpu"), ("use_ml_flow", False),
        ("ml_flow_run_name", "compatibility_sweep")]
    positional = [(name, p.default) for name, p in parameters.items()
                  if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == documented
    assert parameters["executor"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["executor"].default == "auto"


def test_the_seed_call_with_its_defaults_left_out_and_the_executor_passed_through(tmp_path):
    x, y = DATA
    train = [(torch.arange(i, i + 50), x[i:i + 50], y[i:i + 50]) for i in range(0, 200, 50)]
    test = [(torch.arange(i, i + 50), x[i:i + 50], y[i:i + 50]) for i in range(200, 300, 50)]
    h1, h2 = trained_h1(*DATA), new_h2()
    with CompatibilityAnalysis(str(tmp_path / "seed"), 1, h1, h2, train, test, 50, 50,
                               display_widget=False) as seed:
        assert get(seed, "/sweep_status").json()["state"] == "idle"
        assert isinstance(seed.sweep_manager.config.optimizer_class, type)
    with CompatibilityAnalysis(str(tmp_path / "sequential"), 1, h1, h2, train, test, 50, 50,
                               lambda_c_stepsize=1.0, display_widget=False,
                               executor="sequential") as widget:
        assert widget.sweep_manager.executor.name == "sequential"
        assert post(widget, "/start_sweep").status == 202
        wait_done(widget)
        assert get(widget, "/sweep_status").json()["executor"] == "sequential"
    with pytest.raises((TypeError, ValueError), match="executor"):
        CompatibilityAnalysis(str(tmp_path / "bad"), 1, h1, h2, train, test, 50, 50,
                              display_widget=False, executor="warp-drive")
