"""Issue 15: the faster writes of the feature executions store exactly what the previous
path stored.

The serving partition and the training table are now computed and written inside the
warehouse (``write_serving_features``, ``insert_training_features``, labels in SQL)
instead of passing through pandas. The previous path — the frame functions, labels
computed in pandas, ``replace_partition``/``replace_table`` — is the oracle here: every
column of every row must be bit-identical, on the embedded world and on both worlds
delivered through the landing source (the alpine one has its own category names,
timezone and shape), for several nights and for the whole training spine.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from risk_assets.core.features.spec import SPEC_VERSION
from risk_assets.core.night import Night
from risk_assets.defs.features import compute_serving_features
from risk_assets.defs.model import build_training_features, training_nights
from risk_assets.defs.resources import duckdb_resource, open_warehouse
from risk_assets.engines import DuckDBEngine
from risk_assets.engines import executions as fsql
from risk_assets.store import registry, warehouse


def _labels(conn, frame: pd.DataFrame, timezone: str) -> pd.Series:
    """The previous label computation, in pandas: an irregularity in ``[as_of, label_end)``."""
    irregular = conn.execute("SELECT customer_id, event_ts FROM irregularities").df()
    ends = {a: Night.from_as_of(a, timezone).label_end for a in frame["as_of"].unique()}
    merged = frame[["customer_id", "as_of"]].reset_index().merge(irregular, on="customer_id")
    hit = merged[(merged["event_ts"] >= merged["as_of"]) & (merged["event_ts"] < merged["as_of"].map(ends))]
    return pd.Series(frame.index.isin(hit["index"]).astype("int64"), index=frame.index)


def _stored(conn, name: str, day: dt.date) -> pd.DataFrame:
    return warehouse.read_partition(conn, name, day).drop(columns=["partition"])


def _compare(settings, nights: list[dt.date]) -> None:
    vocabulary = settings.features.vocabulary()
    tz = settings.calendar.timezone
    with open_warehouse(duckdb_resource(settings)) as conn:
        version = registry.current_mapping_version(conn)
        for day in nights:
            night = Night.of(day, settings.calendar)
            meta = compute_serving_features(DuckDBEngine(conn), night, settings)
            written = _stored(conn, "serving_features", day)
            frame = fsql.serving_features(conn, night, version, vocabulary)
            warehouse.replace_partition(
                conn, day, {"serving_features": frame.assign(spec_version=SPEC_VERSION, mapping_version=version)}
            )
            before = _stored(conn, "serving_features", day)
            assert len(before) > 100 and meta["active_customers"] == len(before)
            assert meta["null_cells"] == int(frame.drop(columns=["customer_id", "as_of"]).isna().sum().sum())
            pd.testing.assert_frame_equal(written, before, check_exact=True)

        build_training_features(DuckDBEngine(conn), settings)
        written = warehouse.training_frame(conn)
        frames = []
        train, valid = training_nights(settings)
        for split, spine in (("train", train), ("validation", valid)):
            frame = fsql.training_features(conn, spine, version, vocabulary)
            frame["label"] = _labels(conn, frame, tz)
            frames.append(frame.assign(split=split))
        warehouse.replace_table(
            conn,
            {
                "training_features": pd.concat(frames, ignore_index=True).assign(
                    spec_version=SPEC_VERSION, mapping_version=version
                )
            },
        )
        before = warehouse.training_frame(conn)
    assert before["label"].sum() > 0 and before["split"].nunique() == 2
    pd.testing.assert_frame_equal(written, before, check_exact=True)


def test_embedded_world_writes_are_bit_identical_to_the_previous_path(world_copy):
    _compare(world_copy(), [dt.date(2025, 9, 3), dt.date(2025, 10, 31), dt.date(2025, 11, 30)])


def test_landing_worlds_writes_are_bit_identical_to_the_previous_path(landing_copy):
    """Both worlds delivered through the landing source."""
    _compare(landing_copy(), [dt.date(2025, 10, 6), dt.date(2025, 11, 30)])
