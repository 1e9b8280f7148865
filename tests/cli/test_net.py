"""``serve``, ``record`` and ``replay`` as subprocesses on 127.0.0.1 ports, spoken to with httpx
and curl, stopped with SIGINT / SIGTERM."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import threading
import time

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.testing import LoopbackServer, free_port, make_exchange

from .conftest import TIMEOUT, TL, run, sample_exchanges, write_capture

CURL = "/usr/bin/curl"


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [CURL, "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )


def record_live(path, server, *paths):
    """A capture of real exchanges with the loopback server."""
    store = tl.ParquetStream(path)
    with httpx.Client(
        transport=tl.RecordingTransport(store, httpx.HTTPTransport()), base_url=server.url
    ) as client:
        for path_ in paths:
            client.get(path_)
    store.close()
    return path


# -- serve ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live_capture(tmp_path_factory, server):
    path = tmp_path_factory.mktemp("live") / "capture"
    return record_live(path, server, "/gzip", "/reason", "/json?size=40", "/headers")


def test_serve_answers_with_recorded_bytes_then_stops_on_sigint(live_capture, server, running):
    served = running("serve", live_capture, "--port", "0")
    assert served.first_line == (
        f"serving {live_capture} (4 exchanges, cache mode, as {server.url}) at {served.url}; "
        "Ctrl-C to stop"
    )
    recorded = {httpx.URL(ex.url).raw_path.decode(): ex for ex in tl.ParquetStream(live_capture)}
    gz = curl("-H", "Accept-Encoding: gzip", served.url + "/gzip")
    assert gz.stdout == recorded["/gzip"].response_body
    plain = curl(served.url + "/gzip")  # no Accept-Encoding: the body decoded
    assert plain.stdout == gzip.decompress(recorded["/gzip"].response_body)
    head = curl("--include", served.url + "/reason").stdout.decode()
    assert head.startswith("HTTP/1.1 299 Custom Reason\r\n")
    with httpx.Client(base_url=served.url) as client:
        assert client.get("/json?size=40").content == recorded["/json?size=40"].response_body
        assert client.get("/headers").headers.get_list("x-dup") == ["first", "second"]
        miss = client.get("/json?size=41")
    assert (miss.status_code, miss.text) == (
        503,
        f"no recorded response matches GET {server.url}/json?size=41\n"
        f"nearest recorded request: GET {server.url}/json?size=40 (query 'size': '40' != '41')\n",
    )
    code, err = served.stop(signal.SIGINT)
    assert code == 0
    assert err == (
        "stopped: answered 5 recorded, 1 missed, 0 past the end, 0 recorded errors, 0 unservable\n"
    )


def test_serve_timing_recorded_paces_a_recorded_sse_stream(tmp_path, server, running):
    sse = "/stream?chunks=5&size=8&delay_ms=50&sse=1"
    capture = record_live(tmp_path / "sse", server, sse)
    [recorded] = list(tl.ParquetStream(capture).exchanges())
    span = recorded.chunks[-1].offset_us / 1e6  # about 0.2 s: 5 events 50 ms apart
    served = running("serve", capture, "--timing", "recorded", "--speed", "2", "--port", "0")
    times, pieces = [], []
    start = time.perf_counter()
    with httpx.Client(base_url=served.url) as client, client.stream("GET", sse) as response:
        for piece in response.iter_raw():
            pieces.append(piece)
            times.append(time.perf_counter() - start)
    assert b"".join(pieces) == recorded.response_body
    assert len(pieces) >= 3  # sent apart (a loaded machine may merge two reads)
    # The waits run from when the headers went out: the last event comes about span / 2 later.
    assert 0.4 * span <= times[-1] < 0.8 * span + 0.15, (times, span)
    code, _ = served.stop(signal.SIGTERM)
    assert code == 0


def test_serve_stream_mode_in_order_and_sigterm(tmp_path, running):
    capture = write_capture(
        tmp_path / "c",
        [make_exchange(url=f"https://api.example.test/{i}", json={"n": i}) for i in range(2)]
        + [make_exchange(url="https://api.example.test/ws", status_code=101)],
    )
    served = running("serve", capture, "--mode", "stream", "--port", "0")
    with httpx.Client(base_url=served.url) as client:
        answers = [client.get("/whatever").json() for _ in range(2)]
        switching = client.get("/ws")
        after = client.get("/0")
    assert answers == [{"n": 0}, {"n": 1}]
    assert (switching.status_code, switching.headers["x-traffic-lab-mock"]) == (502, "unservable")
    assert (after.status_code, after.headers["x-traffic-lab-mock"]) == (503, "exhausted")
    code, err = served.stop(signal.SIGTERM)
    assert code == 0
    assert err == (
        "stopped: answered 2 recorded, 0 missed, 1 past the end, 0 recorded errors, 1 unservable\n"
    )


def test_serve_strict_and_matching_options(tmp_path, running):
    capture = write_capture(
        tmp_path / "c",
        [make_exchange(url="https://api.example.test/search?q=a&ts=1", json={"hits": 1})],
    )
    served = running("serve", capture, "--port", "0", "--strict", "--ignore-query", "ts")
    with httpx.Client(base_url=served.url) as client:
        hit = client.get("/search?ts=99&q=a")
        miss = client.get("/search?q=b")
    assert hit.json() == {"hits": 1}
    assert miss.status_code == 404
    assert miss.text.splitlines() == [
        "no recorded exchange matches GET https://api.example.test/search?q=b",
        "nearest recorded requests:",
        "  GET https://api.example.test/search?q=a&ts=1",
        "    - query 'q': 'a' != 'b'",
    ]
    served.stop()


def test_serve_several_origins_matches_any(sample, running):
    served = running("serve", sample, "--port", "0")
    assert "cache mode, any origin)" in served.first_line
    assert httpx.get(served.url + "/users/1").json() == {"id": 1, "name": "Ada"}
    broken = httpx.get(served.url + "/health")
    assert (broken.status_code, broken.json()["error"]) == (502, "httpx.ConnectError")
    served.stop()


def test_serve_port_in_use_exits_4(sample):
    with LoopbackServer() as busy:
        port = httpx.URL(busy.url).port
        done = run("serve", sample, "--port", port)
    assert done.returncode == 4
    assert done.stderr == f"Error: cannot listen on 127.0.0.1:{port}: the port is in use\n"


def test_serve_bad_origin_is_a_usage_error(sample):
    done = run("serve", sample, "--origin", "not a url")
    assert done.returncode == 2
    assert "Invalid value for '--origin'" in done.stderr


# -- record --------------------------------------------------------------------------------------
def test_record_passes_traffic_through_and_keeps_all_of_it_after_sigint(tmp_path, server, running):
    capture = tmp_path / "recorded"
    proxy = running("record", capture, "--upstream", server.url, "--port", "0", "--tag", "run=1")
    assert proxy.first_line == (
        f"recording {server.url} into {capture} at {proxy.url}; Ctrl-C to stop"
    )
    with httpx.Client(base_url=proxy.url) as client:
        live = [client.get(f"/json?size={n}").json() for n in (10, 20, 30)]
        posted = client.post("/echo", content=b"hello").json()
    gz = curl(proxy.url + "/gzip").stdout
    code, err = proxy.stop(signal.SIGINT)
    assert code == 0, err
    assert err == f"stopped: recorded 5 exchanges into {capture} (0 upstream errors)\n"
    exchanges = list(tl.ParquetStream(capture).exchanges())
    assert [ex.url for ex in exchanges] == [
        f"{server.url}/json?size=10",
        f"{server.url}/json?size=20",
        f"{server.url}/json?size=30",
        f"{server.url}/echo",
        f"{server.url}/gzip",
    ]
    assert [json.loads(ex.response_body) for ex in exchanges[:3]] == live
    assert posted["body"] == "aGVsbG8=" and exchanges[3].request_body == b"hello"
    assert exchanges[4].response_body == gz
    assert {dict(ex.tags)["run"] for ex in exchanges} == {"1"}


def test_record_sigterm_finishes_requests_in_flight(tmp_path, server, running):
    capture = tmp_path / "recorded"
    proxy = running("record", capture, "--upstream", server.url, "--port", "0")
    result: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: result.append(httpx.get(proxy.url + "/json?size=5&ms=1500", timeout=20))
    )
    slow.start()
    deadline = time.monotonic() + TIMEOUT
    while ("GET", "/json?size=5&ms=1500") not in server.hits and time.monotonic() < deadline:
        time.sleep(0.02)
    code, err = proxy.stop(signal.SIGTERM)
    slow.join(TIMEOUT)
    assert code == 0, err
    assert result[0].status_code == 200
    [exchange] = tl.ParquetStream(capture).exchanges()
    assert exchange.url == f"{server.url}/json?size=5&ms=1500"
    assert exchange.response_body == result[0].content


def test_record_upstream_down_answers_502_and_records_the_error(tmp_path, running):
    upstream = f"http://127.0.0.1:{free_port()}"
    capture = tmp_path / "recorded"
    proxy = running("record", capture, "--upstream", upstream, "--port", "0")
    assert proxy.notes[0] == (
        f"warning: upstream {upstream} is not reachable now (Connection refused); "
        "requests get 502 until it is"
    )
    response = httpx.get(proxy.url + "/users/1")
    assert response.status_code == 502
    assert response.json()["error"] == "httpx.ConnectError"
    code, err = proxy.stop()
    assert code == 0
    assert err == f"stopped: recorded 1 exchange into {capture} (1 upstream error)\n"
    [exchange] = tl.ParquetStream(capture).exchanges()
    assert (exchange.url, exchange.status_code) == (f"{upstream}/users/1", None)
    assert exchange.error is not None and exchange.error.type == "httpx.ConnectError"


@pytest.mark.parametrize("upstream", ["notaurl", "ftp://host", "http://host/?q=1"])
def test_record_malformed_upstream_is_a_usage_error(tmp_path, upstream):
    done = run("record", tmp_path / "c", "--upstream", upstream)
    assert done.returncode == 2
    assert "Invalid value for '--upstream'" in done.stderr
    assert not (tmp_path / "c").exists()


def test_record_port_in_use_exits_4(tmp_path, server):
    with LoopbackServer() as busy:
        port = httpx.URL(busy.url).port
        done = run("record", tmp_path / "c", "--upstream", server.url, "--port", port)
    assert (done.returncode, done.stderr) == (
        4,
        f"Error: cannot listen on 127.0.0.1:{port}: the port is in use\n",
    )


# -- replay --------------------------------------------------------------------------------------
def test_replay_against_the_same_server_finds_no_differences(tmp_path, server):
    capture = record_live(tmp_path / "c", server, "/json?size=10", "/json?size=20", "/status/404")
    out = tmp_path / "live"
    done = run("replay", capture, "--target", server.url, "--out", out, "-c", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"replayed 3 of 3 requests to {server.url}: 3 same, 0 different, 0 failed; "
        f"live responses in {out}\n"
    )
    live = list(tl.ParquetStream(out).exchanges())
    assert sorted(ex.url for ex in live) == sorted(ex.url for ex in tl.ParquetStream(capture))
    assert {dict(ex.tags)["replay_of"] for ex in live} == {server.url}


def test_replay_reports_differences_and_exits_1(tmp_path, server):
    capture = write_capture(
        tmp_path / "c",
        [
            make_exchange(url="https://old.example/status/200", json={"status": 200}),
            make_exchange(url="https://old.example/status/201", json={"status": 200}),
            make_exchange(url="https://old.example/json?size=10", json={"old": True}),
            make_exchange(url="https://old.example/status/503", status_code=200,
                          json={"status": 503}),
        ],
    )  # fmt: skip
    done = run("replay", capture, "--target", server.url, "--out", tmp_path / "o", "--json",
               "--ignore-header", "Server")  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["sent"], report["total"], report["failed"], report["interrupted"]) == (
        4,
        4,
        0,
        False,
    )
    differences = {d["index"]: d for d in report["differences"]}
    assert sorted(differences) == [1, 2, 3]
    assert differences[1]["status"] == [200, 201]
    assert differences[1]["changes"] == ["status: 200 -> 201", "json $.status: 200 -> 201"]
    assert differences[2]["url"] == "https://old.example/json?size=10"
    assert differences[3]["changes"][0] == "status: 200 -> 503"
    table = run("replay", capture, "--target", server.url, "--out", tmp_path / "o2",
                "--ignore-header", "server")  # fmt: skip
    assert table.returncode == 1
    assert table.stdout.splitlines()[0] == (
        f"replayed 4 of 4 requests to {server.url}: 1 same, 3 different, 0 failed; "
        f"live responses in {tmp_path / 'o2'}"
    )


def test_replay_ignores_values_that_were_redacted(tmp_path, server):
    capture = write_capture(
        tmp_path / "c",
        [make_exchange(url="https://old.example/status/200", json={"status": "[REDACTED]"})],
    )
    done = run("replay", capture, "--target", server.url, "--out", tmp_path / "o",
               "--ignore-header", "server")  # fmt: skip
    assert done.returncode == 0, done.stdout


def test_replay_rate_spaces_requests(tmp_path, server):
    capture = record_live(tmp_path / "c", server, "/json?size=1", "/json?size=2", "/json?size=3")
    out = tmp_path / "live"
    assert (
        run("replay", capture, "--target", server.url, "--out", out, "--rate", "4").returncode == 0
    )
    starts = [ex.started_at for ex in tl.ParquetStream(out).exchanges()]
    assert (starts[2] - starts[0]).total_seconds() >= 0.45  # 3 starts, 0.25 s apart


def test_replay_target_down_exits_4(sample, tmp_path):
    target = f"http://127.0.0.1:{free_port()}"
    done = run("replay", sample, "--target", target, "--out", tmp_path / "o")
    assert (done.returncode, done.stderr) == (
        4,
        f"Error: target {target} is not reachable (Connection refused)\n",
    )
    assert not (tmp_path / "o").exists()


def test_replay_bad_arguments(sample, tmp_path, server):
    assert run("replay", sample, "--target", "nope", "--out", tmp_path / "o").returncode == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    done = run("replay", sample, "--target", server.url, "--out", tmp_path / "full")
    assert (done.returncode, done.stderr) == (
        2,
        f"Error: {tmp_path / 'full'} already exists and is not empty; choose another --out\n",
    )
    assert run("replay", sample, "--target", server.url, "-c", "0").returncode == 2


def test_replay_ctrl_c_keeps_every_response_received(tmp_path, server):
    paths = [f"/json?size={n}&ms=150" for n in range(40)]
    capture = write_capture(
        tmp_path / "c", [make_exchange(url=f"https://old.example{p}", json={}) for p in paths]
    )
    out = tmp_path / "live"
    before = len(server.hits)
    process = subprocess.Popen(
        [TL, "replay", str(capture), "--target", server.url, "--out", str(out), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT
    while len(server.hits) - before < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    report = json.loads(stdout)
    assert process.returncode == 130, stderr
    assert report["interrupted"] is True
    assert 4 <= report["sent"] < 40
    assert stderr == (f"interrupted: {report['sent']} of 40 requests replayed; all kept in {out}\n")
    assert len(list(tl.ParquetStream(out).exchanges())) == report["sent"]


def test_sample_capture_has_two_origins():
    assert {httpx.URL(ex.url).host for ex in sample_exchanges()} == {
        "api.example.test",
        "other.example.test",
    }
