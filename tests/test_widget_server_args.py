"""Arguments of the widget and its server, over real HTTP on 127.0.0.1.

A wrong argument raises (naming it) before an earlier widget on the same
folder is closed or its sweep cancelled; ``allowed_hosts`` must be a list of
names; a host that cannot be listened on is named at once; a failing
metadata callback gets the same 500 JSON from ``instances.csv`` as from
``instances``; integer query parameters take leading zeros like path ids.
"""

import os
import subprocess
import sys

import pytest
import torch
from flask import Flask

from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from backwardcompatibilityml.sweep_management import SweepManager
from backwardcompatibilityml.widgets import CompatibilityAnalysis
from backwardcompatibilityml.widgets.compatibility_analysis import api
from backwardcompatibilityml.widgets.compatibility_analysis import compatibility_analysis as analysis_module
from backwardcompatibilityml.widgets.compatibility_analysis import server as server_module
from backwardcompatibilityml.widgets.compatibility_analysis.compatibility_analysis import (
    init_app_routes,
)
from backwardcompatibilityml.widgets.compatibility_analysis.server import (
    PortInUseError,
    bind_socket,
)

from test_widget_server import (
    API,
    REPO,
    GatedAccuracy,
    assert_json_error,
    batches,
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
UNUSABLE_HOSTS = ["999.1.1.1", "no-such-host.invalid", "192.0.2.1"]  # the last: not this machine's


def manager_on(folder, **kw):
    x, y = DATA
    return SweepManager(str(folder), 1, trained_h1(x, y, steps=3), new_h2(), batches(x, y, 0, 200, 50),
                        batches(x, y, 200, 300, 50), 50, 50, lambda_c_stepsize=1.0,
                        OptimizerClass=torch.optim.SGD, optimizer_kwargs={"lr": 0.5},
                        NewErrorLossClass=BCCrossEntropyLoss,
                        StrictImitationLossClass=StrictImitationCrossEntropyLoss, **kw)


# ---------------------------------------------------------------- a stalled sweep stays alone


@pytest.fixture(scope="module")
def stalled(tmp_path_factory):
    """Widget A whose sweep is running, held in its first metric call until the module ends."""
    folder = tmp_path_factory.mktemp("stalled")
    metric = GatedAccuracy(stall_at=1)
    widget = make_widget(folder, trained_h1(*DATA, steps=3), new_h2(), DATA, executor="sequential",
                         performance_metric=metric)
    try:
        assert post(widget, "/start_sweep").status == 202
        assert metric.stalled.wait(60), "the sweep reached its first metric call"
        yield widget
    finally:
        metric.gate.set()
        widget.sweep_manager.wait(60)
        widget.close()


def assert_still_serving_its_running_sweep(widget):
    assert widget.running
    assert widget.sweep_manager.is_running()
    status = get(widget, "/sweep_status")
    assert status.status == 200 and status.json()["running"] is True


BAD_SERVE_ARGUMENTS = [
    ({"port": "abc"}, TypeError, "port"),
    ({"port": 70000}, ValueError, "port"),
    ({"port": True}, TypeError, "port"),
    ({"host": 5}, TypeError, "host"),
    ({"host": "no-such-host.invalid"}, ValueError, "host"),
    ({"host": "999.1.1.1", "port": 0}, ValueError, "host"),
    ({"allowed_hosts": "example.com"}, TypeError, "allowed_hosts"),
    ({"allowed_hosts": [5]}, TypeError, "allowed_hosts"),
    ({"display_widget": "no"}, TypeError, "display_widget"),
    ({"token": 5}, TypeError, "token"),
    ({"token": ""}, ValueError, "token"),
]


@pytest.mark.parametrize("kwargs,error,name", BAD_SERVE_ARGUMENTS)
def test_a_bad_from_sweep_manager_call_leaves_the_running_widget_alone(stalled, kwargs, error, name):
    manager = manager_on(stalled.sweep_manager.folder_name)
    with pytest.raises(error, match=name):
        CompatibilityAnalysis.from_sweep_manager(manager, **{"display_widget": False, **kwargs})
    assert_still_serving_its_running_sweep(stalled)


@pytest.mark.parametrize("kwargs,error,name", BAD_SERVE_ARGUMENTS[:7])
def test_a_bad_constructor_call_leaves_the_running_widget_alone(stalled, kwargs, error, name):
    with pytest.raises(error, match=name):
        make_widget(stalled.sweep_manager.folder_name, trained_h1(*DATA, steps=3), new_h2(), DATA,
                    **kwargs)
    assert_still_serving_its_running_sweep(stalled)


@pytest.mark.parametrize("manager", [object(), None, "a/folder"])
def test_from_sweep_manager_refuses_what_is_not_a_sweep_manager(stalled, manager):
    with pytest.raises(TypeError, match="sweep_manager"):
        CompatibilityAnalysis.from_sweep_manager(manager, display_widget=False)
    assert_still_serving_its_running_sweep(stalled)


def test_a_taken_port_leaves_the_running_widget_alone(stalled):
    blocker = bind_socket("127.0.0.1", 0)
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(PortInUseError, match=str(port)):
            CompatibilityAnalysis.from_sweep_manager(
                manager_on(stalled.sweep_manager.folder_name), port=port, display_widget=False)
    finally:
        blocker.close()
    assert_still_serving_its_running_sweep(stalled)


def test_the_port_of_the_earlier_widget_on_the_same_folder_is_taken_over(tmp_path):
    first = CompatibilityAnalysis.from_sweep_manager(manager_on(tmp_path), port=0, display_widget=False)
    port = first.port
    try:
        # That port can only be bound once the earlier widget is retired: the host is checked before.
        with pytest.raises(ValueError, match="host '999.1.1.1'"):
            CompatibilityAnalysis.from_sweep_manager(manager_on(tmp_path), port=port, host="999.1.1.1",
                                                     display_widget=False)
        assert first.running and get(first, "/sweep_status").status == 200
        with CompatibilityAnalysis.from_sweep_manager(manager_on(tmp_path), port=port,
                                                      display_widget=False) as second:
            assert second.port == port and not first.running
            assert get(second, "/sweep_status").status == 200
            assert_json_error(call(port, API + "/sweep_status", token=first.token), 403)
    finally:
        first.close()


def test_a_failure_after_retiring_closes_the_new_socket(tmp_path, monkeypatch):
    """Reading the folder again after an earlier sweep was cancelled fails: the port bound for the new widget is freed."""
    bound = []
    monkeypatch.setattr(analysis_module, "bind_socket", lambda *args: bound.append(bind_socket(*args)) or bound[-1])
    monkeypatch.setattr(analysis_module._registry, "retire_earlier", lambda *args, **kwargs: True)  # one was cancelled
    constructions = []
    construct = SweepManager.__init__

    def second_read_fails(self, *args, **kwargs):
        constructions.append(1)
        if len(constructions) == 2:
            raise RuntimeError("the folder could not be read again")
        construct(self, *args, **kwargs)

    monkeypatch.setattr(SweepManager, "__init__", second_read_fails)
    with pytest.raises(RuntimeError, match="read again"):
        make_widget(tmp_path, trained_h1(*DATA, steps=3), new_h2(), DATA)
    assert len(bound) == 1 and bound[0].fileno() == -1, "the new widget's socket is closed"


def test_a_server_that_fails_before_serving_closes_the_socket_it_was_given(monkeypatch):
    """WidgetServer owns a passed socket from the call on: a failure while it starts (the connection cap) closes it."""

    def no_limit():
        raise RuntimeError("the open-file limit could not be read")

    monkeypatch.setattr(server_module, "connection_limit", no_limit)
    sock = bind_socket("127.0.0.1", 0)
    try:
        with pytest.raises(RuntimeError, match="open-file limit"):
            server_module.WidgetServer(Flask(__name__), host="127.0.0.1", sock=sock)
        assert sock.fileno() == -1, "the passed socket is closed"
    finally:
        sock.close()


# ---------------------------------------------------------------- allowed_hosts and the Host header


@pytest.fixture(scope="module")
def completed(tmp_path_factory):
    """A widget whose sweep completed; its metadata callback fails for every 7th instance."""

    def metadata(instance_id):
        if instance_id % 7 == 3:
            raise LookupError(f"no row for {instance_id} in /srv/labels.csv")
        return "sample %d" % instance_id

    widget = make_widget(tmp_path_factory.mktemp("completed"), trained_h1(*DATA, steps=3), new_h2(),
                         DATA, batch=10, get_instance_metadata=metadata,
                         allowed_hosts=["Example.COM", "other.test:8080"])
    assert post(widget, "/start_sweep").status == 202
    wait_done(widget)
    yield widget
    widget.close()


@pytest.mark.parametrize("host", ["example.com", "EXAMPLE.com:%d", "other.test", "other.test:1"])
def test_allowed_hosts_are_accepted_whole(completed, host):
    host = host % completed.port if "%d" in host else host
    assert get(completed, "/sweep_status", headers={"Host": host}).status == 200


@pytest.mark.parametrize("host", ["e", "x", "example", "com", "example.com.evil.test", "[::1",
                                  "[::1]evil.test", "[::1]:%d:1", "[127.0.0.1", "::1]", "[]"])
def test_hosts_not_allowed_or_malformed_are_403(completed, host):
    host = host % completed.port if "%d" in host else host
    assert_json_error(get(completed, "/sweep_status", headers={"Host": host}), 403)


def test_the_bracketed_loopback_host_with_a_port_is_still_accepted(completed):
    answer = get(completed, "/sweep_status", headers={"Host": "[::1]:%d" % completed.port})
    assert answer.status == 200


def test_allowed_hosts_as_one_string_is_refused_with_a_hint(tmp_path):
    with pytest.raises(TypeError, match=r"allowed_hosts.*\['example.com'\]"):
        CompatibilityAnalysis.from_sweep_manager(manager_on(tmp_path), allowed_hosts="example.com",
                                                 display_widget=False)


@pytest.mark.parametrize("allowed,error", [("example.com", TypeError), ([5], TypeError),
                                           (b"example.com", TypeError), (["[::1"], ValueError)])
def test_init_app_routes_checks_allowed_hosts(tmp_path, allowed, error):
    with pytest.raises(error, match="allowed_hosts"):
        init_app_routes(Flask(__name__), manager_on(tmp_path), allowed_hosts=allowed)


def test_init_app_routes_refuses_a_token_that_is_not_a_string(tmp_path):
    with pytest.raises(TypeError, match="token"):
        init_app_routes(Flask(__name__), manager_on(tmp_path), token=12345)


# ---------------------------------------------------------------- hosts that cannot be listened on


@pytest.mark.parametrize("host", UNUSABLE_HOSTS)
@pytest.mark.parametrize("port", [None, 0])
def test_a_host_that_cannot_be_listened_on_is_named_at_once(host, port, monkeypatch):
    tries = []
    bind = server_module._bind
    monkeypatch.setattr(server_module, "_bind", lambda *args: tries.append(args) or bind(*args))
    with pytest.raises(ValueError, match="host %r" % host) as info:
        bind_socket(host, port)
    assert not isinstance(info.value, PortInUseError)
    assert "port" not in str(info.value).lower()
    assert len(tries) == 1, "one failed bind, not every port of the range tried"


def test_the_cli_names_a_host_that_cannot_be_listened_on(completed):
    result = subprocess.run(
        [sys.executable, "-m", "backwardcompatibilityml", "serve",
         completed.sweep_manager.folder_name, "--host", "999.1.1.1", "--no-browser"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "host '999.1.1.1'" in result.stderr
    assert "No free port" not in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- instances.csv and a failing callback


def datapoint_with_failing_metadata(widget):
    for point in get(widget, "/sweep_summary").json()["data"]:
        index = point["datapoint_index"]
        answer = get(widget, "/evaluation_data/%d/instances?limit=500" % index)
        if answer.status == 500:
            return index, answer
    raise AssertionError("no datapoint lists an instance whose metadata fails")


def test_instances_csv_answers_the_same_500_json_as_instances(completed):
    index, paged = datapoint_with_failing_metadata(completed)
    assert "get_instance_metadata raised LookupError" in paged.json()["error"]
    csv = get(completed, "/evaluation_data/%d/instances.csv" % index)
    assert_json_error(csv, 500)
    assert csv.json() == paged.json()
    assert "/srv" not in csv.json()["error"]
    assert get(completed, "/sweep_status").status == 200, "the server goes on"


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A widget whose sweep completed, with the default metadata."""
    widget = make_widget(tmp_path_factory.mktemp("plain"), trained_h1(*DATA, steps=3), new_h2(),
                         DATA, batch=10)
    assert post(widget, "/start_sweep").status == 202
    wait_done(widget)
    yield widget
    widget.close()


def test_a_long_instances_csv_streams_the_same_rows(plain, monkeypatch):
    whole = get(plain, "/evaluation_data/1/instances.csv")
    monkeypatch.setattr(api, "_CSV_PREFETCH_CHARS", 1)  # the header alone is prefetched: the rows stream
    streamed = get(plain, "/evaluation_data/1/instances.csv")
    assert streamed.status == 200 and "content-length" not in streamed.headers
    assert streamed.body == whole.body


def test_instances_csv_is_whole_and_sized(plain):
    csv = get(plain, "/evaluation_data/1/instances.csv")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
    rows = csv.body.decode("utf-8").splitlines()
    total = get(plain, "/evaluation_data/1/instances?limit=1").json()["total"]
    assert total > 0 and len(rows) == total + 1 and rows[0].startswith("instance_id,metadata,")
    assert int(csv.headers["content-length"]) == len(csv.body)


# ---------------------------------------------------------------- integers with leading zeros


@pytest.mark.parametrize("query,same_as", [
    ("offset=00000000000000000001", "offset=1"),
    ("offset=" + "0" * 40 + "2&limit=0003", "offset=2&limit=3"),
    ("limit=0000000000000000000000005", "limit=5"),
    ("offset=-0&limit=2", "offset=0&limit=2"),
])
def test_integer_query_parameters_take_leading_zeros_like_path_ids(plain, query, same_as):
    expected = get(plain, "/evaluation_data/1/instances?" + same_as)
    answer = get(plain, "/evaluation_data/1/instances?" + query)
    assert expected.status == 200 and len(expected.json()["items"]) > 0
    assert answer.status == 200 and answer.json() == expected.json()


@pytest.mark.parametrize("route", ["instances", "instances.csv"])
def test_the_class_parameter_takes_leading_zeros(plain, route):
    for point in get(plain, "/sweep_summary").json()["data"]:
        index = point["datapoint_index"]
        unpadded = get(plain, "/evaluation_data/%d/%s?class=4" % (index, route))
        padded = get(plain, "/evaluation_data/%d/%s?class=0000000000000000000004" % (index, route))
        assert unpadded.status == 200
        assert (padded.status, padded.body) == (unpadded.status, unpadded.body)


@pytest.mark.parametrize("query", [
    "offset=" + "0" * 30 + "9" * 20, "offset=" + "0" * 30 + "9223372036854775808",
    "class=" + "0" * 5 + "1" * 19, "offset=0x1", "offset=%2B1", "offset=1-", "class=--1", "limit=-0001",
])
def test_integers_still_out_of_range_or_malformed_are_400(plain, query):
    assert_json_error(get(plain, "/evaluation_data/0/instances?" + query), 400)


def test_an_offset_of_int64_max_with_leading_zeros_is_an_empty_page(plain):
    answer = get(plain, "/evaluation_data/0/instances?offset=0009223372036854775807")
    assert answer.status == 200 and answer.json()["items"] == []
    assert answer.json()["offset"] == 2 ** 63 - 1



# ---------------------------------------------------------------- the shared checks behind these arguments


def test_the_shared_checks_name_the_argument():
    from backwardcompatibilityml.validation import check_instance, check_port, check_str, check_str_list

    assert check_str_list(None, "allowed_hosts") == ()
    assert check_str_list(["a", "b"], "allowed_hosts") == ("a", "b")
    assert check_str_list({"a"}, "allowed_hosts") == ("a",)
    for bad in ("a", b"a", 5, {"a": 1}, ["a", None]):
        with pytest.raises(TypeError, match="allowed_hosts"):
            check_str_list(bad, "allowed_hosts")
    assert check_port(None) is None and check_port(0) == 0 and check_port(65535) == 65535
    for bad, error in (("80", TypeError), (8.0, TypeError), (False, TypeError), (-1, ValueError),
                       (65536, ValueError)):
        with pytest.raises(error, match="port"):
            check_port(bad)
    with pytest.raises(TypeError, match="port"):
        check_port(None, allow_none=False)
    assert check_str("", "host") == "" and check_str(None, "token", allow_none=True) is None
    with pytest.raises(TypeError, match="host"):
        check_str(b"127.0.0.1", "host")
    with pytest.raises(ValueError, match="token"):
        check_str("", "token", allow_empty=False)
    with pytest.raises(TypeError, match="sweep_manager must be a .*SweepManager"):
        check_instance(object(), "sweep_manager", SweepManager)
