"""Reference data judged like transactions (``customer_changes``): the customers version the
night's features read, against the version before it.

The nightly run re-reads the customers file when its content changed and stores it as a
new version valid from that night on (``customer_versions``; serving joins the version valid
at the night's as-of, training the one valid at each row's as-of). What changed is recorded
with the delivery: accounts opened (their transactions are a *new* customer's — counted here,
never rejected as unknown), accounts gone, and customers whose attributes changed. A few
customers moving segment is routine; a large share of the base re-classified at once is a
new segmentation or a mapping bug, which every feature built on the attributes would absorb
silently — it blocks every night the version is valid for, until a corrected file is
delivered or an override accepts the version."""

from __future__ import annotations

import pandas as pd

from risk_assets.checks import Inputs, Step, Verdict
from risk_assets.core import reference
from risk_assets.store import warehouse

# --------------------------------------------------------------------------- statistic
NEW_CUSTOMER_ROWS = f"""
    SELECT count(*) AS rows, count(DISTINCT r.customer_id) AS customers
    FROM {warehouse.table("raw_transactions")} r
    JOIN {warehouse.table("customer_changes")} c
      ON c.customer_id = r.customer_id AND c.change = 'new' AND c.version = $version
     AND c.valid_from = CAST($valid_from AS TIMESTAMP)
    WHERE r.partition = CAST($day AS DATE)"""
"""Tonight's accepted rows (and their customers) from accounts the version valid tonight
delivered for the first time."""


def new_customer_rows_of(raw: pd.DataFrame, changes: pd.DataFrame) -> dict[str, int]:
    """The row-level definition of :data:`NEW_CUSTOMER_ROWS` (``raw``: tonight's rows;
    ``changes``: the version's ``customer_changes`` rows)."""
    new = set(changes.loc[changes["change"] == "new", "customer_id"])
    mine = raw[raw["customer_id"].isin(new)]
    return {"rows": len(mine), "customers": int(mine["customer_id"].nunique())}


# --------------------------------------------------------------------------- guard
def _net(changes: pd.DataFrame, attribute: str) -> pd.Series:
    """Customers gained (+) or lost (−) per value of one attribute by the re-classification."""
    moved = changes[(changes["change"] == "changed") & (changes["attribute"] == attribute)]
    gained = moved.groupby("new_value").size()
    lost = moved.groupby("old_value").size()
    return gained.sub(lost, fill_value=0).astype(int)


def customer_changes(
    delivery: dict | None,
    changes: pd.DataFrame,
    new_rows: pd.DataFrame,
    as_of: pd.Timestamp,
    accepted: dict[str, str],
    max_changed_share: float,
    before: pd.DataFrame | None = None,
    after: pd.DataFrame | None = None,
) -> Verdict:
    """ERROR when the customers version valid at ``as_of`` changed the attributes of more
    than ``max_changed_share`` of the customers it shares with the version before it
    (unless ``accepted`` — an override — names the version). The reason names the attribute,
    the values that gained and lost customers, the transitions and since when the version is
    valid. ``delivery``: its ``customer_deliveries`` row; ``changes``: its
    ``customer_changes`` rows; ``new_rows``: one row of :data:`NEW_CUSTOMER_ROWS`;
    ``before``/``after``: customers per attribute value in the version before and in this one
    (:func:`risk_assets.core.reference.value_counts`) — with them the reason names every
    rename, merge, split and new value of the vocabulary, passing or not (a value the model
    never saw scores as unseen: ``category_coverage`` counts those customers)."""
    thresholds = {"max_changed_share": max_changed_share}
    if delivery is None:
        return Verdict(
            False,
            "ERROR",
            f"no customers version is valid at {as_of}: materialise `customers` first",
            {},
            thresholds,
        )
    valid_from = pd.Timestamp(delivery["valid_from"])
    since = "tonight" if valid_from == as_of else f"since {valid_from}"
    share = float(delivery["changed_share"])
    figures = {
        "customers_version": delivery["version"],
        "valid_from": str(valid_from),
        "previous_version": delivery["previous_version"] or "-",
        "customers": int(delivery["customers"]),
        "new_customers": int(delivery["new_customers"]),
        "new_customer_rows_tonight": int(new_rows["rows"].iloc[0]) if len(new_rows) else 0,
        "new_customers_transacting_tonight": int(new_rows["customers"].iloc[0]) if len(new_rows) else 0,
        "changed_customers": int(delivery["changed_customers"]),
        "dropped_customers": int(delivery["dropped_customers"]),
        "changed_share": share,
    }
    moved = changes[changes["change"] == "changed"]
    by_attribute = moved.groupby("attribute")["customer_id"].nunique().sort_values(ascending=False)
    for attribute, n in by_attribute.items():
        figures[f"changed_{attribute}"] = int(n)
    tables = {"transitions": reference.transitions(changes).head(50)}
    vocabulary = (
        reference.vocabulary_changes(changes, before, after) if before is not None and after is not None else []
    )
    figures["vocabulary_changes"] = reference.vocabulary_words(vocabulary) or "-"
    if vocabulary:
        tables["vocabulary"] = pd.DataFrame(
            [{**c, "old": ", ".join(c["old"]), "new": ", ".join(c["new"])} for c in vocabulary]
        )
    counted = (
        f"{figures['new_customers']} new account(s) ({figures['new_customers_transacting_tonight']} transacting "
        f"tonight, {figures['new_customer_rows_tonight']} rows), {figures['dropped_customers']} dropped"
    )
    if vocabulary:
        counted += (
            f"; vocabulary: {figures['vocabulary_changes']} — a value the model never saw scores as unseen "
            "(category_coverage): have the export fixed, or retrain with the new values"
        )
    if share <= max_changed_share or delivery["version"] in accepted:
        waived = delivery["version"] in accepted and share > max_changed_share
        return Verdict(
            True,
            "ERROR",
            f"customers version {delivery['version']} ({since}): {figures['changed_customers']} customer(s) "
            f"({share:.2%}) changed attributes (at most {max_changed_share:.0%}); {counted}"
            + (f" — re-classification accepted by override ({accepted[delivery['version']]})" if waived else ""),
            figures | {"accepted_by_override": waived},
            thresholds,
            tables=tables,
        )
    attribute = str(by_attribute.index[0])
    net = _net(changes, attribute)
    words = ""
    if len(net):
        up, down = net.idxmax(), net.idxmin()
        figures |= {"column": attribute, "value": str(down), "direction": "down", "gaining_value": str(up)}
        words = f": {attribute} {down!r} lost {-int(net[down])} customers, {up!r} gained {int(net[up])}"
        top = tables["transitions"].head(3)
        words += " (" + ", ".join(f"{r.old_value} → {r.new_value} {r.customers}" for r in top.itertuples()) + ")"
    else:
        figures |= {"column": attribute, "value": "-", "direction": "changed"}
    figures["since"] = str(valid_from)
    return Verdict(
        False,
        "ERROR",
        f"{share:.1%} of the customers re-classified by the customers delivery valid {since} "
        f"({delivery['version']}, {figures['changed_customers']} of "
        f"{figures['changed_customers'] + int(delivery['unchanged_customers'])}){words} — more than "
        f"{max_changed_share:.0%}: a new segmentation or a mapping error in the export? Have the file re-delivered "
        f"(the next night's run re-reads it), or accept the version (override.accept_customer_versions); {counted}",
        figures,
        thresholds,
        tables=tables,
    )


# --------------------------------------------------------------------------- loader
def load(step: Step) -> Inputs:
    """The delivery valid at the night's as-of, its recorded changes and tonight's rows from
    its new accounts."""
    as_of = pd.Timestamp(step.night.as_of)
    delivery = warehouse.delivery_valid_at(step.conn, as_of)
    before = after = None
    if delivery is None:
        changes = pd.DataFrame(columns=reference.CHANGE_COLUMNS)
        new_rows = pd.DataFrame({"rows": [0], "customers": [0]})
    else:
        changes = warehouse.customer_changes(step.conn, delivery["version"], delivery["valid_from"])
        valid_from = pd.Timestamp(delivery["valid_from"])
        if delivery["previous_version"]:  # the first delivery has no vocabulary to change
            after = warehouse.attribute_counts(step.conn, valid_from)
            before = warehouse.attribute_counts(step.conn, valid_from - pd.Timedelta(microseconds=1))
        new_rows = step.statistic(
            NEW_CUSTOMER_ROWS,
            {"version": delivery["version"], "valid_from": pd.Timestamp(delivery["valid_from"]), "day": step.night.day},
        )
    override = step.settings.override
    return Inputs(
        {
            "delivery": delivery,
            "changes": changes,
            "new_rows": new_rows,
            "as_of": as_of,
            "accepted": dict.fromkeys(override.accept_customer_versions, f"{override.by}: {override.reason}"),
            "before": before,
            "after": after,
        }
    )
