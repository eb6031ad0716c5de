"""What changed between two deliveries of the customers file, and how it is judged."""

import hashlib

import numpy as np
import pandas as pd

from risk_assets.checks.customers import customer_changes, new_customer_rows_of
from risk_assets.core.reference import content_hash, delta, transitions, value_counts, vocabulary_changes

T = pd.Timestamp("2025-01-01")


def _customers(rows):
    return pd.DataFrame(rows, columns=["customer_id", "segment", "region", "opened_at"])


BASE = _customers([(f"C{i}", "retail" if i % 3 else "smb", "north" if i % 2 else "south", T) for i in range(100)])


def test_the_content_hash_ignores_row_order_and_sees_any_attribute():
    assert content_hash(BASE) == content_hash(BASE.sample(frac=1, random_state=1))
    moved = BASE.copy()
    moved.loc[5, "region"] = "east"
    assert content_hash(moved) != content_hash(BASE)
    later = BASE.copy()
    later.loc[5, "opened_at"] = T + pd.Timedelta(days=1)
    assert content_hash(later) != content_hash(BASE)


def _row_by_row_hash(customers: pd.DataFrame) -> str:
    """The content hash's definition, one row at a time (how it was computed until it took
    seconds at 1M customers): the column-wise hash must give the same version ids."""
    frame = customers[["customer_id", "segment", "region", "opened_at"]].sort_values("customer_id")
    digest = hashlib.sha256()
    for row in frame.itertuples(index=False):
        digest.update("\x1f".join("" if pd.isna(v) else str(v) for v in row).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


def test_the_column_wise_content_hash_is_the_row_by_row_definition():
    rng = np.random.default_rng(5)
    n = 500
    stamps = pd.Series(pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="min"))
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in rng.permutation(n)],
            "segment": rng.choice(["retail", "smb", "ünïcode", ""], n).astype(object),
            "region": rng.choice(["north", "south"], n).astype(object),
            "opened_at": stamps,
        }
    )
    frame.loc[rng.random(n) < 0.1, "segment"] = None
    frame.loc[rng.random(n) < 0.1, "region"] = np.nan
    frame.loc[rng.random(n) < 0.1, "opened_at"] = pd.NaT
    assert content_hash(frame) == _row_by_row_hash(frame)
    # a fraction of a second, a timezone, a date column read as text, a number as a segment
    fraction = frame.assign(opened_at=frame["opened_at"] + pd.Timedelta(milliseconds=250))
    zoned = frame.assign(opened_at=frame["opened_at"].dt.tz_localize("UTC"))
    texts = frame.assign(opened_at=frame["opened_at"].astype(str))
    numbers = frame.assign(segment=[7, 7.5, None, "x"] * (n // 4))
    seconds = frame.assign(opened_at=frame["opened_at"].astype("datetime64[s]"))
    for variant in (fraction, zoned, texts, numbers, seconds, frame.iloc[:1], frame.iloc[:0]):
        assert content_hash(variant) == _row_by_row_hash(variant)
    assert content_hash(fraction) != content_hash(frame)


def test_the_received_fingerprint_sees_any_value_the_layout_and_the_contracts_parameter():
    from risk_assets.core.reference import received_fingerprint

    frame = BASE.assign(_source_file="customers.parquet")
    same = received_fingerprint(frame.copy(), 64)
    assert same == received_fingerprint(frame, 64) and same.startswith("100:")
    moved = frame.copy()
    moved.loc[5, "region"] = "east"
    texts = frame.assign(opened_at=frame["opened_at"].astype(str))
    variants = (moved, frame.iloc[::-1], frame[frame.columns[::-1]], texts, frame.iloc[:99])
    assert len({same, received_fingerprint(frame, 65), *(received_fingerprint(v, 64) for v in variants)}) == 7
    # text that is not all ``str``: pandas would hash 1 as "1" and b"x" as "x" (judged instead)
    for other in (1, b"retail", True):
        mixed = frame.copy()
        mixed["segment"] = [other if i == 3 else v for i, v in enumerate(mixed["segment"])]
        assert received_fingerprint(mixed, 64) is None
    assert received_fingerprint(frame.assign(segment=frame["segment"].where(frame.index != 3, None)), 64)
    unhashable = frame.astype(object)
    unhashable["segment"] = [["a", "list"] if i == 3 else v for i, v in enumerate(unhashable["segment"])]
    # a malformed file (a list where a name belongs): judged by the contract, never skipped
    assert received_fingerprint(unhashable, 64) is None


def test_a_delivery_is_new_changed_dropped_or_unchanged_customer_by_customer():
    now = BASE[BASE["customer_id"] != "C0"].copy()
    now.loc[now["customer_id"] == "C1", "segment"] = "premium"
    now.loc[now["customer_id"] == "C2", ["segment", "region"]] = ["smb", "east"]
    now = pd.concat([now, _customers([("N1", "retail", "north", T)])], ignore_index=True)
    d = delta(BASE, now)
    assert d.new == ["N1"] and d.dropped == ["C0"] and d.changed == ["C1", "C2"]
    assert d.unchanged == 97 and d.compared == 99 and d.changed_share == 2 / 99
    rows = d.changes[d.changes["change"] == "changed"]
    assert sorted(zip(rows["customer_id"], rows["attribute"])) == [
        ("C1", "segment"),
        ("C2", "region"),
        ("C2", "segment"),
    ]
    assert transitions(d.changes)["customers"].sum() == 3
    first = delta(None, BASE)
    assert len(first.new) == 100 and first.changed_share == 0.0


def _delivery(changed: int, unchanged: int, new: int = 0, version: str = "v2"):
    return {
        "version": version,
        "valid_from": T,
        "previous_version": "v1",
        "customers": changed + unchanged + new,
        "new_customers": new,
        "changed_customers": changed,
        "dropped_customers": 0,
        "unchanged_customers": unchanged,
        "changed_share": changed / (changed + unchanged),
    }


def test_a_mass_re_classification_fails_naming_the_attribute_and_values_routine_changes_pass():
    moved = BASE.copy()
    moved.loc[:29, "segment"] = moved.loc[:29, "segment"].map({"retail": "smb", "smb": "premium"})
    d = delta(BASE, moved)
    new_rows = pd.DataFrame({"rows": [0], "customers": [0]})
    verdict = customer_changes(_delivery(len(d.changed), d.unchanged), d.changes, new_rows, T, {}, 0.05)
    assert not verdict.passed and verdict.severity == "ERROR"
    assert verdict.figures["column"] == "segment" and verdict.figures["direction"] == "down"
    assert verdict.figures["value"] == "retail" and "tonight" in verdict.summary
    assert "retail → smb" in verdict.summary
    accepted = customer_changes(
        _delivery(len(d.changed), d.unchanged), d.changes, new_rows, T, {"v2": "j.doe: new segmentation"}, 0.05
    )
    assert accepted.passed and accepted.figures["accepted_by_override"]
    later = customer_changes(
        _delivery(len(d.changed), d.unchanged), d.changes, new_rows, T + pd.Timedelta(days=1), {}, 0.05
    )
    assert not later.passed and f"since {T}" in later.summary
    routine = moved.copy()
    routine["segment"] = BASE["segment"]
    routine.loc[3, "segment"] = "premium"
    r = delta(BASE, routine)
    assert customer_changes(_delivery(len(r.changed), r.unchanged), r.changes, new_rows, T, {}, 0.05).passed


def test_new_accounts_are_counted_with_their_rows_tonight():
    grown = pd.concat([BASE, _customers([("N1", "retail", "north", T), ("N2", "smb", "south", T)])])
    d = delta(BASE, grown)
    raw = pd.DataFrame({"customer_id": ["N1", "N1", "C3", "N2"]})
    counted = new_customer_rows_of(raw, d.changes)
    assert counted == {"rows": 3, "customers": 2}
    verdict = customer_changes(_delivery(0, 100, new=2), d.changes, pd.DataFrame([counted]), T, {}, 0.05)
    assert (
        verdict.passed and verdict.figures["new_customers"] == 2 and verdict.figures["new_customer_rows_tonight"] == 3
    )
    assert customer_changes(None, d.changes, pd.DataFrame([counted]), T, {}, 0.05).passed is False


def test_renames_merges_splits_and_new_values_of_the_vocabulary_are_named():
    """A segment renamed, two regions merged, a value split, a value new: each named as such
    in the verdict (passing or not), with its customers — the alias suggestion of the
    customer attributes."""
    now = BASE.copy()
    now["segment"] = now["segment"].replace({"smb": "SMB"})  # every smb customer: a rename
    retail = [i for i in range(15) if i % 3][:10]
    now.loc[retail, "segment"] = "private"  # a value nobody held: new (and 10% re-classified)
    four = _customers([(f"D{i}", "retail", ["east", "west", "up", "down"][i % 4], T) for i in range(40)])
    merged = four.copy()
    merged["region"] = merged["region"].replace({"east": "centre", "west": "centre", "up": "top", "down": "bottom"})
    d = delta(BASE, now)
    found = vocabulary_changes(d.changes, value_counts(BASE), value_counts(now))
    kinds = {(c["kind"], tuple(c["old"]), tuple(c["new"])) for c in found}
    assert ("rename", ("smb",), ("SMB",)) in kinds and ("new", (), ("private",)) in kinds, found
    m = delta(four, merged)
    found = vocabulary_changes(m.changes, value_counts(four), value_counts(merged))
    kinds = {(c["kind"], tuple(c["old"]), tuple(c["new"])) for c in found}
    assert ("merge", ("east", "west"), ("centre",)) in kinds, found
    assert ("rename", ("up",), ("top",)) in kinds and ("rename", ("down",), ("bottom",)) in kinds
    into_held = four.assign(region=four["region"].replace({"east": "west"}))  # one value into one held before
    h = delta(four, into_held)
    found = vocabulary_changes(h.changes, value_counts(four), value_counts(into_held))
    assert [(c["kind"], c["old"], c["new"], c["customers"]) for c in found] == [("merge", ["east"], ["west"], 10)]
    split = four.copy()
    split.loc[split["region"] == "east", "region"] = ["north", "south"] * 5
    s = delta(four, split)
    found = vocabulary_changes(s.changes, value_counts(four), value_counts(split))
    assert [(c["kind"], c["old"], c["new"], c["customers"]) for c in found] == [
        ("split", ["east"], ["north", "south"], 10)
    ]
    assert vocabulary_changes(delta(BASE, BASE).changes, value_counts(BASE), value_counts(BASE)) == []

    new_rows = pd.DataFrame({"rows": [0], "customers": [0]})
    verdict = customer_changes(
        _delivery(len(d.changed), d.unchanged), d.changes, new_rows, T, {}, 0.05, value_counts(BASE), value_counts(now)
    )
    assert not verdict.passed and "segment 'smb' renamed to 'SMB' (34 customers)" in verdict.summary
    assert "new segment 'private' (10 customers)" in verdict.figures["vocabulary_changes"]
    assert set(verdict.tables["vocabulary"]["kind"]) == {"rename", "new"}
