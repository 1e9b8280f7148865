"""``ls``, ``stats`` and ``show`` on a capture with known content; help and bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from .conftest import PNG, TL, run, run_bytes

COMMANDS = [
    "ls",
    "stats",
    "show",
    "import",
    "export",
    "compact",
    "scan-secrets",
    "serve",
    "record",
    "replay",
]


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_help_lists_every_command_and_the_exit_codes():
    done = run("--help")
    assert done.returncode == 0
    for command in COMMANDS:
        assert f"\n  {command} " in done.stdout
    assert "  3    capture not found or unreadable" in done.stdout
    assert "  4    network problem (upstream or target unreachable, port in use)" in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_exit_codes(command):
    done = run(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: traffic-lab {command} [OPTIONS]")
    assert "Example" in done.stdout
    assert "Exit codes:" in done.stdout


def test_short_help_option():
    assert run("serve", "-h").stdout == run("serve", "--help").stdout


def test_version_and_module_entry_point():
    assert run("--version").stdout == "traffic-lab, version 0.1.0\n"
    done = subprocess.run(
        [sys.executable, "-m", "traffic_lab.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == "traffic-lab, version 0.1.0\n"


def test_unknown_command_and_option_are_usage_errors():
    done = run("lss")
    assert done.returncode == 2
    assert "No such command 'lss'" in done.stderr
    assert run("ls", "--bogus", "x").returncode == 2


def test_missing_extra_names_the_install_command():
    code = "import sys; sys.modules['rich'] = None; from traffic_lab.cli import main; main(['ls'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == (
        "The traffic-lab command line needs extra packages (rich is missing):\n"
        "    pip install 'traffic_lab[cli]'\n"
    )


# -- ls ------------------------------------------------------------------------------------------
def test_ls_json_lists_every_exchange_in_recorded_order(sample):
    done = run("ls", sample, "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows == [
        {"index": 0, "started_at": "2026-01-01T12:00:00.000+00:00", "method": "GET",
         "url": "https://api.example.test/users/1", "status": 200, "elapsed_ms": 12.5,
         "response_bytes": 21, "error": None, "truncated": False},
        {"index": 1, "started_at": "2026-01-01T12:00:01.000+00:00", "method": "GET",
         "url": "https://api.example.test/orders?page=2", "status": 200, "elapsed_ms": 20.0,
         "response_bytes": 45, "error": None, "truncated": False},
        {"index": 2, "started_at": "2026-01-01T12:00:02.000+00:00", "method": "POST",
         "url": "https://api.example.test/users", "status": 201, "elapsed_ms": 30.0,
         "response_bytes": 21, "error": None, "truncated": False},
        {"index": 3, "started_at": "2026-01-01T12:00:03.000+00:00", "method": "GET",
         "url": "https://api.example.test/img/1.png", "status": 200, "elapsed_ms": 5.0,
         "response_bytes": 264, "error": None, "truncated": False},
        {"index": 4, "started_at": "2026-01-01T12:00:04.000+00:00", "method": "GET",
         "url": "https://api.example.test/reports/9", "status": 500, "elapsed_ms": 100.0,
         "response_bytes": 18, "error": None, "truncated": False},
        {"index": 5, "started_at": "2026-01-01T12:00:05.000+00:00", "method": "GET",
         "url": "https://other.example.test/health", "status": None, "elapsed_ms": 1.0,
         "response_bytes": None, "error": "httpx.ConnectError", "truncated": False},
    ]  # fmt: skip


def test_ls_table(sample):
    done = run("ls", sample, "--limit", "2")
    assert done.returncode == 0
    out = lines(done.stdout)
    assert out[0].split() == [
        "#",
        "time",
        "(UTC)",
        "method",
        "status",
        "ms",
        "bytes",
        "url",
    ]  # no note column: neither row has a note
    assert out[2].split() == [
        "0", "2026-01-01", "12:00:00.000", "GET", "200", "12.5", "21",
        "https://api.example.test/users/1",
    ]  # fmt: skip
    assert out[3].split()[-1] == "https://api.example.test/orders?page=2"
    assert out[4:] == ["2 of 6 exchanges shown; --limit N or --all for more"]
    last = lines(run("ls", sample, "--all").stdout)
    assert last[-2].split()[-3:] == ["-", "https://other.example.test/health", "httpx.ConnectError"]
    assert last[-1] == "6 exchanges"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--status", "5xx,error"], [4, 5]),
        (["--status", "5xx,failed"], [4, 5]),
        (["--status", "200-201"], [0, 1, 2, 3]),
        (["--status", "failed", "--host", "other.example.test"], [5]),
        (["--status", "201"], [2]),
        (["--status", "2xx", "--method", "get"], [0, 1, 3]),
        (["--host", "other.example.test"], [5]),
        (["--host", "nowhere"], []),
    ],
)
def test_ls_filters_keep_the_recorded_numbers(sample, options, expected):
    done = run("ls", sample, "--json", *options)
    assert [json.loads(line)["index"] for line in done.stdout.splitlines()] == expected


def test_ls_bad_status_filter_is_a_usage_error(sample):
    done = run("ls", sample, "--status", "teapot")
    assert done.returncode == 2
    assert "Invalid value for '--status'" in done.stderr
    assert "'teapot' is not valid; use a code (404), a class (5xx), a range (500-599)" in " ".join(
        done.stderr.split()
    )


def test_a_folder_that_is_not_a_capture_is_a_usage_error(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "README.md").write_text("hello")
    for args in (["ls", tmp_path], ["stats", tmp_path], ["show", tmp_path, 0]):
        done = run(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert f"not a capture: {tmp_path} holds no capture files" in done.stderr
        assert "exchanges" not in done.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run("stats", empty)
    assert done.returncode == 0
    assert done.stdout.startswith("exchanges  0\n")


def test_ls_fits_a_100_column_terminal(sample):
    # A real pseudo-terminal, 100 columns wide, through script(1).
    command = f"stty cols 100 rows 50; {TL} ls {sample} --all"
    done = subprocess.run(
        ["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    text = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout).replace("\r", "")
    out = text.splitlines()
    assert max(len(line) for line in out) <= 100
    assert out[0].split() == [
        "#",
        "time",
        "(UTC)",
        "method",
        "status",
        "ms",
        "bytes",
        "url",
        "note",
    ]
    # URLs are folded onto more lines rather than cut.
    assert "…" not in text
    compact = re.sub(r"\s+", "", text)
    assert "https://api.example.test/orders?page=2" in compact
    assert "https://api.example.test/users/1" in compact


# -- stats ---------------------------------------------------------------------------------------
def test_stats_json_is_the_frames_summary(sample):
    done = run("stats", sample, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["summary"] == {
        "exchanges": 6,
        "start": "2026-01-01T12:00:00.000+00:00",
        "end": "2026-01-01T12:00:05.000+00:00",
        "duration": 5.0,
        "hosts": 2,
        "endpoints": 6,
        "status_1xx": 0,
        "status_2xx": 4,
        "status_3xx": 0,
        "status_4xx": 0,
        "status_5xx": 1,
        "failed": 1,
        "truncated": 0,
        "error_rate": 0.333,
        # Linear percentiles of 1, 5, 12.5, 20, 30 and 100 ms.
        "p50_ms": 16.25,
        "p90_ms": 65.0,
        "p99_ms": 96.5,
        "max_ms": 100.0,
        "request_bytes": 14,
        "response_bytes": 369,
        "repeated_requests": 0,
    }
    import traffic_lab as tl

    frame = tl.frames.read_capture(sample)
    assert result["summary"]["p90_ms"] == frame.traffic.summary()["p90_ms"]
    endpoints = {(e["method"], e["endpoint"]): e for e in result["endpoints"]}
    assert sorted(endpoints) == [
        ("GET", "/health"),
        ("GET", "/img/1.png"),
        ("GET", "/orders"),
        ("GET", "/reports/{id}"),
        ("GET", "/users/{id}"),
        ("POST", "/users"),
    ]
    assert endpoints[("GET", "/reports/{id}")] == {
        "method": "GET",
        "endpoint": "/reports/{id}",
        "count": 1,
        "errors_4xx": 0,
        "errors_5xx": 1,
        "failed": 0,
        "error_rate": 1.0,
        "p50_ms": 100.0,
        "p90_ms": 100.0,
        "p99_ms": 100.0,
        "max_ms": 100.0,
        "response_bytes_total": 18,
    }


def test_stats_table(sample):
    done = run("stats", sample)
    assert done.returncode == 0
    out = lines(done.stdout)
    assert out[:10] == [
        "exchanges  6",
        "from       2026-01-01T12:00:00.000+00:00",
        "to         2026-01-01T12:00:05.000+00:00",
        "hosts      2, 6 endpoints",
        "statuses   2xx 4  5xx 1",
        "errors     1 transport error, 0 truncated, error rate 33.3%",
        "latency    p50 16.2 ms  p90 65.0 ms  p99 96.5 ms  max 100.0 ms",
        "bytes      14 sent, 369 received",
        "repeated   0 requests with an earlier twin",
        "",
    ]
    assert out[10].split() == ["method", "endpoint", "count", "4xx", "5xx", "failed", "p50", "ms",
                               "p90", "ms", "p99", "ms", "max", "ms", "bytes"]  # fmt: skip
    assert [row.split()[:3] for row in out[12:]] == [
        ["GET", "/health", "1"],
        ["GET", "/img/1.png", "1"],
        ["GET", "/orders", "1"],
        ["GET", "/reports/{id}", "1"],
        ["GET", "/users/{id}", "1"],
        ["POST", "/users", "1"],
    ]
    assert out[15].split() == ["GET", "/reports/{id}", "1", "0", "1", "0", "100.0", "100.0",
                               "100.0", "100.0", "18"]  # fmt: skip


def test_stats_filters_top_and_hosts(sample):
    two = json.loads(run("stats", sample, "--json", "--status", "5xx,error").stdout)
    assert two["summary"]["exchanges"] == 2
    assert [e["endpoint"] for e in two["endpoints"]] == ["/health", "/reports/{id}"]
    by_host = json.loads(
        run("stats", sample, "--json", "--by-host", "--host", "other.example.test").stdout
    )
    assert [(e["host"], e["endpoint"]) for e in by_host["endpoints"]] == [
        ("other.example.test", "/health")
    ]
    top = lines(run("stats", sample, "--top", "2").stdout)
    assert top[-1] == "4 more endpoints (--top N, --json)"


def test_stats_of_an_empty_capture(tmp_path):
    (tmp_path / "empty").mkdir()
    done = run("stats", tmp_path / "empty", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["summary"]["exchanges"], result["summary"]["start"], result["endpoints"]) == (
        0,
        None,
        [],
    )


# -- show ----------------------------------------------------------------------------------------
def test_show_decodes_gzip_and_pretty_prints_json(sample):
    done = run("show", sample, 1)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == [
        "#1  2026-01-01T12:00:01.000+00:00  20.0 ms",
        "",
        "GET https://api.example.test/orders?page=2",
        "",
        "HTTP/1.1 200 OK",
        "Content-Type: application/json",
        "Content-Encoding: gzip",
        "Content-Length: 45",
        "",
        "{",
        '  "orders": [',
        "    {",
        '      "id": 1',
        "    },",
        "    {",
        '      "id": 2',
        "    }",
        "  ]",
        "}",
    ]


def test_show_request_body_tags_and_negative_numbers(sample):
    first = lines(run("show", sample, -6).stdout)
    assert first[0] == "#0  2026-01-01T12:00:00.000+00:00  12.5 ms  session=s1"
    post = lines(run("show", sample, 2).stdout)
    assert post[2:8] == [
        "POST https://api.example.test/users",
        "Content-Type: application/json",
        "",
        "{",
        '  "name": "Bob"',
        "}",
    ]


def test_show_transport_error(sample):
    assert lines(run("show", sample, -1).stdout)[-1] == (
        "transport error: httpx.ConnectError: [Errno 111] Connection refused"
    )


def test_show_binary_and_raw(sample):
    assert lines(run("show", sample, 3).stdout)[-1] == (
        "(image/png image, 264 bytes; --raw writes it to stdout)"
    )
    assert run_bytes("show", sample, 3, "--raw").stdout == PNG
    assert run_bytes("show", sample, 1, "--raw").stdout == b'{"orders":[{"id":1},{"id":2}]}'


def test_show_json(sample):
    doc = json.loads(run("show", sample, 2, "--json").stdout)
    assert doc == {
        "index": 2,
        "started_at": "2026-01-01T12:00:02.000000+00:00",
        "elapsed_ms": 30.0,
        "tags": {},
        "truncated": False,
        "request": {
            "method": "POST",
            "url": "https://api.example.test/users",
            "headers": [["Content-Type", "application/json"]],
            "body": '{"name":"Bob"}',
        },
        "response": {
            "status": 201,
            "reason": "Created",
            "http_version": "HTTP/1.1",
            "headers": [["Content-Type", "application/json"], ["Content-Length", "21"]],
            "wire_bytes": 21,
            "body": '{"id":2,"name":"Bob"}',
        },
        "error": None,
    }
    png = json.loads(run("show", sample, 3, "--json").stdout)["response"]
    assert (png["body"], png["wire_bytes"]) == (None, 264)
    assert png["body_base64"].startswith("iVBORw0KGgo")


def test_show_out_of_range_is_bad_input(sample):
    done = run("show", sample, 6)
    assert done.returncode == 2
    assert done.stderr == f"Error: {sample} holds 6 exchanges; there is no number 6\n"


# -- bad captures --------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["ls", "stats", "show", "export", "compact", "scan-secrets",
                                     "serve", "replay"])  # fmt: skip
def test_unknown_capture_exits_3(tmp_path, command):
    missing = tmp_path / "nope"
    extra = {"show": ["0"], "export": [str(tmp_path / "x.har")],
             "replay": ["--target", "http://127.0.0.1:9"]}.get(command, [])  # fmt: skip
    done = run(command, missing, *extra)
    assert done.returncode == 3, done.stderr
    assert done.stderr == f"Error: capture not found: {missing}\n"


def test_a_file_is_not_a_capture(tmp_path):
    har = tmp_path / "session.har"
    har.write_text("{}")
    done = run("ls", har)
    assert done.returncode == 3
    assert done.stderr == (
        f"Error: not a capture: {har} is a file (a capture is a folder; to read a HAR, VCR or "
        "http4k file, use 'traffic-lab import')\n"
    )


def test_unreadable_capture_file_is_skipped_with_a_warning(tmp_path):
    from .conftest import sample_exchanges, write_capture

    capture = write_capture(tmp_path / "c", sample_exchanges(), files=2)
    [victim] = sorted(capture.glob("day=*/*.parquet"))[:1]
    victim.write_bytes(b"PAR1 this is not parquet")
    done = run("ls", capture, "--json")
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 3
    assert done.stderr.startswith("warning: ")
    assert victim.name in done.stderr and "skipped" in done.stderr


def test_console_script_is_installed():
    assert TL.endswith("traffic-lab")


def test_show_survives_hostile_bodies(tmp_path):
    # The terminal view is the notebook's body view (wire.bodies): bounded decoding, JSON
    # nested deeper than the parser's stack shown as text, long text cut with a note.
    import gzip

    import traffic_lab as tl
    from traffic_lab.testing import make_exchange

    deep = b"[" * 200_000 + b"]" * 200_000  # json.loads raises RecursionError on it
    bomb = gzip.compress(b"\0" * (80 << 20), mtime=0)  # 80 MiB of zeros in ~80 KB
    capture = tmp_path / "c"
    with tl.ParquetStream(capture) as stream:
        stream.put(make_exchange(url="https://a.example/deep", response_body=deep,
                                 response_headers=[(b"Content-Type", b"application/json")]))  # fmt: skip
        stream.put(make_exchange(url="https://a.example/bomb", response_body=bomb,
                                 response_headers=[(b"Content-Encoding", b"gzip")]))  # fmt: skip
    done = run("show", capture, 0)
    assert done.returncode == 0, done.stderr
    out = lines(done.stdout)
    assert "(showing the first 200,000 of 400,000 characters)" in out
    assert out[-1].startswith("[[[[") and len(out[-1]) <= 200_000
    done = run("show", capture, 1)
    assert done.returncode == 0, done.stderr
    assert any(
        "decodes to more than" in line and "shown as stored" in line for line in lines(done.stdout)
    )
    assert (
        lines(done.stdout)[-1] == f"(binary body, {len(bomb):,} bytes; --raw writes it to stdout)"
    )
