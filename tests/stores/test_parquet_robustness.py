"""Crashes and concurrent processes: kill -9 during durable writes; 4 processes writing at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

import traffic_lab as tl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WRITER = r"""
import sys, traffic_lab as tl
folder, tag, count, durable, flush_rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
store = tl.ParquetStream(folder, durable=durable, flush_rows=flush_rows, flush_seconds=0.05)
print("ready", flush=True)
for i in range(count):
    store.put(tl.Exchange("POST", f"https://api.example/{tag}/{i}", request_body=b"x" * (i % 300),
                          status_code=200, response_body=b"y" * (i % 700), tags={"writer": tag}))
    if durable:
        print(i, flush=True)
store.close()
print("done", flush=True)
"""


def _spawn(folder, tag, count, durable, flush_rows):
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            str(folder),
            tag,
            str(count),
            "1" if durable else "0",
            str(flush_rows),
        ],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )


@pytest.mark.slow
def test_kill_9_during_durable_writes_loses_no_acknowledged_exchange(tmp_path):
    rng = random.Random(1234)
    acked: dict[str, set[int]] = {}
    for round_ in range(20):
        tag = f"r{round_}"
        proc = _spawn(tmp_path, tag, 1_000_000, True, rng.choice([7, 50, 400]))
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.02, 0.25))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        lines = out.splitlines()
        if lines and not lines[-1].isdigit():
            lines = lines[:-1]  # a line cut by the kill
        acked[tag] = {int(line) for line in lines if line.isdigit()}
        # The capture stays readable, and every acknowledged put is there exactly once.
        stream = tl.ParquetStream(tmp_path)
        seen = Counter(stream.to_arrow(["request_url"]).column(0).to_pylist())
        assert max(seen.values(), default=1) == 1
        for t, numbers in acked.items():
            missing = [i for i in numbers if seen[f"https://api.example/{t}/{i}"] != 1]
            assert missing == [], f"round {round_}: lost {len(missing)} acknowledged from {t}"
        assert len(stream) == sum(seen.values())
    assert sum(len(v) for v in acked.values()) > 1000
    urls = [e.url for e in tl.ParquetStream(tmp_path).exchanges()]
    assert len(urls) == len(set(urls)) == sum(seen.values())
    # Every dead writer's log was folded (a kill between creating a segment and naming it
    # leaves a hidden ".new" file, which compact() removes once stale).
    logs = os.listdir(tmp_path / "_traffic_lab" / "logs")
    assert [name for name in logs if not name.startswith(".")] == []


@pytest.mark.slow
def test_four_processes_write_one_capture_at_once(tmp_path):
    procs = [_spawn(tmp_path, f"p{n}", 5000, False, 700) for n in range(4)]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert (proc.returncode, out.split()) == (0, ["ready", "done"])
    seen = Counter(e.url for e in tl.ParquetStream(tmp_path).exchanges())
    expected = {f"https://api.example/p{n}/{i}" for n in range(4) for i in range(5000)}
    assert (len(seen), set(seen), set(seen.values())) == (20_000, expected, {1})
    cache = tl.ParquetCache(tmp_path)
    assert (len(cache), len(cache.keys())) == (20_000, 20_000)
    report = cache.compact()
    assert (report.rows, len(cache)) == (20_000, 20_000)
    seen = Counter(e.url for e in tl.ParquetStream(tmp_path).exchanges())
    assert (len(seen), set(seen.values())) == (20_000, {1})
