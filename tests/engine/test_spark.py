"""tl.spark: the engine's questions answered by a local Spark session, the same answers."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pyspark.sql import SparkSession

import traffic_lab as tl
import traffic_lab.spark

from .test_query import SAMPLE, WHERES, varied, varied_capture

# py4j leaves its loopback sockets to the garbage collector.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture(scope="module")
def spark():
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # loopback only, whatever the host name says
    session = (
        SparkSession.builder.master("local[2]")
        .appName("traffic_lab-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return varied_capture(tmp_path_factory.mktemp("spark") / "capture", 1200)


def test_the_sample_capture_gets_the_pandas_answers(spark):
    query, frame = tl.spark.open_capture(str(SAMPLE), spark), tl.read_capture(SAMPLE)
    assert query.count() == 3000
    pd.testing.assert_series_equal(query.summary().to_series(), frame.traffic.summary().to_series())
    pd.testing.assert_frame_equal(
        query.endpoints(by_host=True), frame.traffic.endpoints(by_host=True), rtol=1e-9
    )
    pd.testing.assert_frame_equal(query.duplicates(), frame.traffic.duplicates(), rtol=1e-9)


def test_timeline_and_compare_are_duckdbs(spark, capture):
    on_spark, on_duckdb = tl.spark.open_capture(str(capture), spark), tl.open_capture(capture)
    pd.testing.assert_frame_equal(on_spark.timeline("10s"), on_duckdb.timeline("10s"), rtol=1e-9)
    a, b = {"host": "a.example"}, {"host": "b.example"}
    pd.testing.assert_frame_equal(
        on_spark.where(a).compare(on_spark.where(b), sample=5),
        on_duckdb.where(a).compare(on_duckdb.where(b), sample=5),
        rtol=1e-9,
    )


def test_every_kind_of_where_selects_the_rows_duckdb_selects(spark, capture):
    base = tl.spark.open_capture(str(capture), spark)
    for where in WHERES:
        query = base.where(where)
        frame = tl.read_capture(capture, where=where)
        assert query.count() == len(frame), where
        pd.testing.assert_frame_equal(query.endpoints(), frame.traffic.endpoints(), rtol=1e-9)
    tagged = base.where(tags={"run": "x"}, status="5xx")
    assert tagged.count() == 0  # no exchange carries that tag
    assert repr(base.where(status=500)).startswith("<SparkCaptureQuery ")


def test_rules_cleared_rows_and_compacted_files(spark, tmp_path):
    path = tmp_path / "c"
    with tl.ParquetStream(path) as stream:
        for ex in varied(100, start=datetime.now(UTC) - timedelta(hours=1)):
            stream.put(ex)
        stream.clear()
        for i, ex in enumerate(varied(90, seed=3, start=datetime.now(UTC) + timedelta(seconds=5))):
            stream.put(ex)
            if i % 30 == 29:
                stream.flush()
    tl.ParquetStream(path).compact()
    query = tl.spark.open_capture(str(path), spark)
    assert query.count() == len(tl.read_capture(path)) == 90
    rows = query.where(method="POST").to_spark()
    assert rows.count() == len(tl.read_capture(path, where={"method": "POST"}))
    assert "elapsed_ms" in rows.columns and "tags" in rows.columns


def test_rows_and_mistakes(spark, capture):
    query = tl.spark.open_capture(str(capture), spark).where(status="4xx")
    expected = tl.read_capture(capture, where={"status": "4xx"})
    pd.testing.assert_frame_equal(query.to_pandas(), expected)
    assert query.head(2).request_url.tolist() == expected.request_url.head(2).tolist()
    with pytest.raises(TypeError, match=r"Spark queries take a traffic_lab\.Where"):
        query.where(tl.Where(status=500).expression())


def test_a_capture_with_no_files_yet_answers_zero(spark, tmp_path):
    with tl.ParquetStream(tmp_path / "empty") as stream:  # the folder, no file yet
        stream.flush()
    (tmp_path / "empty").mkdir(exist_ok=True)
    query = tl.spark.open_capture(str(tmp_path / "empty"), spark)
    assert query.count() == 0
    assert query.where(status="5xx").summary()["exchanges"] == 0
