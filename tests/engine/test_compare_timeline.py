"""``open_capture(...).compare()`` and ``.timeline()``: the engine's answers over the Parquet
files, against ``df.traffic.compare()`` and a plain pandas computation on the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import traffic_lab as tl
from tests.engine.test_query import varied_capture
from traffic_lab.testing import make_exchange

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def drifting(host: str, n: int, extra: str | None, start: datetime) -> list[tl.Exchange]:
    """``n`` JSON answers per endpoint; from the 4th on, a ``host`` may add the ``extra`` field
    and turn ``total`` into a string (so a small ``sample`` does not see the drift)."""
    out = []
    for i in range(n):
        doc: dict[str, object] = {"id": i, "total": 3}
        if extra is not None and i >= 3:
            doc[extra] = True
            doc["total"] = "3"
        out.append(
            make_exchange(
                "GET",
                f"https://{host}/orders/{i}",
                json=doc,
                started_at=start + timedelta(seconds=i),
            )
        )
        out.append(
            make_exchange(
                "GET",
                f"https://{host}/health",
                status_code=503 if i % 4 == 0 else 200,
                json={"ok": i % 4 != 0},
                started_at=start + timedelta(seconds=i, milliseconds=500),
            )
        )
    return out


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    """One capture, two hosts, written by two streams into files whose order is not the
    recorded order (the engine must still sample the first rows in recorded order)."""
    path = tmp_path_factory.mktemp("compare") / "capture"
    late = drifting("b.example", 8, "coupon", T0 + timedelta(minutes=1))
    early = drifting("a.example", 8, None, T0)
    for part in (late[8:], early, late[:8]):
        with tl.ParquetStream(path, row_group_size=4) as stream:
            for ex in part:
                stream.put(ex)
    return path


@pytest.mark.parametrize("sample", [100, 3, 0])
@pytest.mark.parametrize("by_host", [False, True])
def test_compare_is_the_pandas_accessors(two_hosts, sample, by_host):
    q = tl.open_capture(two_hosts)
    df = tl.read_capture(two_hosts)
    kwargs = {"labels": ("a", "b"), "by_host": by_host, "sample": sample}
    got = q.where(host="a.example").compare(q.where(host="b.example"), **kwargs)
    a, b = df[df.request_host == "a.example"], df[df.request_host == "b.example"]
    expected = a.traffic.compare(b, **kwargs)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)


def test_compare_reports_the_drift_and_status_mix(two_hosts):
    q = tl.open_capture(two_hosts)
    got = q.where(host="a.example").compare(q.where(host="b.example"), labels=("old", "new"))
    orders = got.loc[("GET", "/orders/{id}")]
    assert orders.fields_added == ["$.coupon"]
    assert orders.fields_removed == []
    assert orders.types_changed == ["$.total: number -> number|string"]
    assert bool(orders.schema_changed) is True
    health = got.loc[("GET", "/health")]
    assert health.statuses_old == {200: 6, 503: 2} and health.statuses_new == {200: 6, 503: 2}
    assert health.error_rate_new == 0.25 and bool(health.schema_changed) is False
    # With 3 samples per endpoint, the 4th response (the first with the drift) is not read.
    small = q.where(host="a.example").compare(q.where(host="b.example"), sample=3)
    assert bool(small.loc[("GET", "/orders/{id}")].schema_changed) is False


def test_compare_checks_its_arguments(two_hosts):
    q = tl.open_capture(two_hosts)
    with pytest.raises(ValueError, match="labels must differ"):
        q.compare(q, labels=("x", "x"))
    with pytest.raises(TypeError, match="another CaptureQuery, got DataFrame"):
        q.compare(tl.read_capture(two_hosts))


def reference_timeline(frame: pd.DataFrame, every_s: int) -> pd.DataFrame:
    """The timeline computed with plain pandas, for the comparison."""
    seconds = frame.started_at.astype("int64") // 1_000_000
    bucket = pd.to_datetime((seconds // every_s) * every_s, unit="s", utc=True)
    status = frame.response_status
    parts = pd.DataFrame(
        {
            "count": 1,
            **{f"status_{c}xx": status.between(c * 100, c * 100 + 99) for c in range(1, 6)},
            "failed": status.isna(),
            "elapsed_ms": frame.elapsed_ms,
            "response_bytes": frame.response_body_size.fillna(0),
        }
    )
    grouped = parts.groupby(bucket.rename("bucket"))
    out = grouped[[c for c in parts.columns if c != "elapsed_ms"]].sum().astype("int64")
    for q in (50, 90, 99):
        out[f"p{q}_ms"] = grouped.elapsed_ms.quantile(q / 100)
    out["max_ms"] = grouped.elapsed_ms.max()
    return out


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    return varied_capture(tmp_path_factory.mktemp("timeline") / "capture", 2000)


@pytest.mark.parametrize("every", ["1s", 7, pd.Timedelta(minutes=1)])
def test_timeline_is_a_pandas_groupby_with_the_gaps_kept(varied, every):
    got = tl.open_capture(varied).where(host="b.example").timeline(every)
    frame = tl.read_capture(varied, where={"host": "b.example"})
    every_s = int(
        pd.Timedelta(every if not isinstance(every, int) else f"{every}s").total_seconds()
    )
    expected = reference_timeline(frame, every_s)
    assert got.index.freq is not None and got.index.freq.n == every_s
    assert int(got["count"].sum()) == len(frame)
    assert got.index[0] == expected.index[0] and got.index[-1] == expected.index[-1]
    busy = got.loc[expected.index]
    for column in expected.columns:
        np.testing.assert_allclose(busy[column].to_numpy(float), expected[column].to_numpy(float))
    empty = got.drop(expected.index)
    assert (empty["count"] == 0).all() and empty["p50_ms"].isna().all()
    errors = got.status_4xx + got.status_5xx + got.failed
    np.testing.assert_allclose(busy.error_rate, (errors / got["count"]).loc[expected.index])


def test_timeline_picks_a_round_width_and_checks_every(varied, tmp_path):
    q = tl.open_capture(varied)
    auto = q.timeline()
    assert len(auto) <= 200 and auto.index.freq.n in (1, 2, 5, 10, 15, 30, 60)
    assert int(auto["count"].sum()) == q.count()
    for bad in ("500ms", 0, -5, 1.5):
        with pytest.raises(ValueError, match="whole seconds >= 1"):
            q.timeline(bad)
    wide = tl.ParquetStream(tmp_path / "wide")
    for when in (T0, T0 + timedelta(days=400)):
        wide.put(make_exchange(started_at=when))
    wide.close()
    with pytest.raises(ValueError, match=r"buckets \(at most 100,000\): choose a wider bucket"):
        tl.open_capture(tmp_path / "wide").timeline("1min")
    assert list(tl.open_capture(tmp_path / "wide").timeline("1D")["count"].iloc[[0, -1]]) == [1, 1]


def test_timeline_of_nothing_is_an_empty_frame(varied):
    empty = tl.open_capture(varied).where(status="1xx").timeline("1min")
    assert len(empty) == 0 and "count" in empty.columns and str(empty.index.tz) == "UTC"
