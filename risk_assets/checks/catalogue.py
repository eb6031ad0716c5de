"""The check catalogue: every asset check of the project, one row each.

A row says what the check is called, which asset it guards, whether it blocks, its
severity policy, what it loads and which pure guard judges it (both in the check's family
module next to its statistic: ``risk_assets/checks/<family>.py``), and which settings feed
which of the guard's thresholds. ``risk_assets/defs/checks.py`` turns the rows into Dagster
asset checks; checks evaluated *inside* their asset (before the asset writes, or on
unpartitioned reference data) have no loader — the asset hands its in-memory frames to the
same guard.

Adding a check = a guard and a loader in its family module + one row here (README:
"Adding a check"). Plain Python: no Dagster imports, so the table can be read and tested
alone.
"""

from __future__ import annotations

from risk_assets.checks import (
    CheckDecl,
    Step,
    Verdict,
    amounts,
    coverage,
    customers,
    daily,
    drift,
    imputation,
    landing,
    lookback,
    parity,
    profile,
    reconcile,
    rejections,
    replays,
    schemas,
    volume,
)
from risk_assets.checks.model import realised_vs_validation
from risk_assets.checks.scores import score_sanity

_PARITY = {
    "atol": "checks.parity_atol",
    "rtol": "checks.parity_rtol",
    "bias_alpha": "checks.parity_bias_alpha",
    "min_nonzero": "checks.parity_min_nonzero",
    "categorical_tolerance": "checks.parity_categorical_tolerance",
}

CHECKS: tuple[CheckDecl, ...] = (
    # ------------------------------------------------------------------ reference data (in the asset)
    CheckDecl(
        "rows_reconcile",
        "customers",
        reconcile.rows_reconcile,
        partitioned=False,
        description="received = accepted + rejected: rows read from the source against the rows "
        "stored in customers and rejected_customers.",
    ),
    CheckDecl(
        "conflicting_duplicates",
        "customers",
        rejections.conflicting_duplicates,
        partitioned=False,
        description="A customer_id that arrives more than once with different attributes: every copy is "
        "rejected (no tie-break by row order) and this check fails with the ids; their transactions are "
        "rejected naming the conflict.",
    ),
    CheckDecl(
        "rows_reconcile",
        "irregularities",
        reconcile.rows_reconcile,
        partitioned=False,
        description="received = accepted + rejected: rows read from the source against the rows "
        "stored in irregularities and rejected_irregularities.",
    ),
    # ------------------------------------------------------------------ raw layer
    CheckDecl(
        "rows_reconcile",
        "raw_transactions",
        reconcile.rows_reconcile,
        load=reconcile.load,
        quarantines=True,
        description="received = accepted + rejected: the counts recorded at load time against the "
        "rows stored in raw_transactions and rejected_transactions.",
    ),
    CheckDecl(
        "conflicting_duplicates",
        "raw_transactions",
        rejections.conflicting_duplicates,
        load=rejections.load_conflicts,
        quarantines=True,
        description="A transaction_id that arrived more than once with different values (within a file, "
        "across files, or against a row stored in another partition): every copy is rejected, none wins "
        "by file order, and the day fails with the ids, files and differing columns.",
    ),
    CheckDecl(
        "landing_files",
        "raw_transactions",
        landing.landing_files,
        load=landing.load_files,
        blocking=False,
        severity="WARN",
        description="What the load read and what it did not: data files with their rows, skipped marker, "
        "checksum and hidden files with the reason, and stray entries of the landing folder (malformed "
        "partition names, folders that fit no partition), which fail it (WARN) until cleaned up.",
    ),
    CheckDecl(
        "raw_schema",
        "raw_transactions",
        schemas.raw_schema,
        load=schemas.load_raw,
        settings={"max_amount": "raw.max_amount", "max_text": "raw.max_text_length"},
        description="Pandera schema of the stored partition: types, ranges, unique ids, timestamps "
        "inside the partition.",
    ),
    CheckDecl(
        "rejection_rate",
        "raw_transactions",
        rejections.rejection_rate,
        load=rejections.load_rejections,
        quarantines=True,
        settings={"max_rejected_share": "checks.max_rejected_share"},
        description="Share of received rows the contract rejected.",
    ),
    CheckDecl(
        "row_volume",
        "raw_transactions",
        volume.row_volume,
        load=volume.load,
        quarantines=True,
        settings={
            "min_share": "checks.min_volume_share",
            "holiday_min_share": "checks.holiday_min_volume_share",
            "max_share": "checks.max_volume_share",
        },
        description="A day with no rows, or far fewer than the same weekday's recent median (public "
        "holidays judged as holidays), stops the night: zero rows break no contract but would "
        "silently shrink every window.",
    ),
    CheckDecl(
        "replayed_rows",
        "raw_transactions",
        replays.replayed_rows,
        load=replays.load,
        quarantines=True,
        settings={"max_replayed_share": "checks.max_replayed_share"},
        description="Rows that repeat another row of the night in every field but the id (customer, time, "
        "amount, category, channel): a file re-sent under fresh ids passes the contract but counts every "
        "event twice.",
    ),
    CheckDecl(
        "amount_scale",
        "raw_transactions",
        amounts.amount_scale,
        load=amounts.load,
        quarantines=True,
        settings={"max_amount_factor": "checks.max_amount_factor"},
        description="The night's amounts per category against the same categories' recent level: a "
        "unit change (cents sent as euros) moves them all by one factor, which the result states.",
    ),
    CheckDecl(
        "amount_pileup",
        "raw_transactions",
        amounts.amount_pileup,
        load=amounts.load_pileup,
        quarantines=True,
        settings={"max_pileup_factor": "checks.max_pileup_factor"},
        description="One amount holding far more of the night's rows than the recent days' most repeated "
        "amount held of theirs: amounts clipped at a field's limit or filled with a constant move no median "
        "but erase the tail.",
    ),
    CheckDecl(
        "night_profile",
        "raw_transactions",
        profile.night_profile,
        load=profile.load,
        quarantines=True,
        severity="WARN or ERROR",
        settings={
            "max_z": "checks.profile_max_z",
            "warn_z": "checks.profile_warn_z",
            "min_ratio": "checks.profile_min_ratio",
            "large_ratio": "checks.profile_large_ratio",
            "large_z": "checks.profile_large_z",
        },
        description="Every value of every categorical column (category, channel, and the customers' segment "
        "and region) and the day as a whole: share of rows and of customers, low/median/high amounts and the "
        "most repeated amount's share, each judged two-sided against the same weekday's healthy recent days. "
        "A subpopulation lost or doubled, one value's amounts in another unit or clipped — while the totals "
        "look normal. Blocks on ERROR only.",
    ),
    CheckDecl(
        "category_coverage",
        "raw_transactions",
        coverage.category_coverage,
        load=coverage.load_categories,
        settings={"max_unmapped_share": "checks.coverage_max_unmapped_share"},
        blocking=False,
        deps=("category_mapping",),
        description="Unmapped categories among the night's raw rows, vanished categories and "
        "suggested aliases. ERROR but not blocking here, so the feature layer still shows the "
        "consequences; the blocking coverage check sits on encoded_features.",
    ),
    CheckDecl(
        "channel_coverage",
        "raw_transactions",
        coverage.value_coverage,
        load=coverage.load_channels,
        settings={"max_unseen_share": "checks.coverage_max_unmapped_share"},
        deps=("category_mapping",),
        blocking=False,
        description="Share of the night's rows whose channel the training period never saw (the channel "
        "vocabulary is stored with the mapping version). ERROR but not blocking here (the mapping it "
        "reads is downstream of this asset); its blocking twin sits on serving_features.",
    ),
    CheckDecl(
        "late_arrivals",
        "raw_transactions",
        landing.late_arrivals,
        load=landing.load_late_rows,
        blocking=False,
        severity="WARN",
        description="Reconciles last night: re-reads the previous partition from the source with "
        "tonight's cut-off; rows that arrived after it was served are late data, and the customers "
        "they belong to were scored on incomplete windows. WARN with the affected share.",
    ),
    # ------------------------------------------------------------------ serving features
    CheckDecl(
        "lookback_health",
        "serving_features",
        lookback.lookback_health,
        load=lookback.load,
        description="Every raw partition the night's 90-day look-back reads has been loaded and passed "
        "the raw layer's blocking checks on its latest load. A failed day is quarantined: it blocks "
        "every night whose windows read it, naming the day and the check, until it is re-loaded and "
        "passes or an override (override.accept_days, with by and reason) accepts it.",
    ),
    CheckDecl(
        "customer_changes",
        "serving_features",
        customers.customer_changes,
        load=customers.load,
        settings={"max_changed_share": "checks.max_reclassified_share"},
        deps=("customers",),
        description="The customers version the night's features read (the one valid at its as-of; the "
        "nightly run re-reads a changed customers file as a new version) against the version before it: new "
        "accounts and their rows tonight counted, dropped accounts counted, and a mass re-classification "
        "(more than max_reclassified_share of the customers changing segment, region or opening date) "
        "blocks every night the version is valid for, naming the attribute, the values and the transitions.",
    ),
    CheckDecl(
        "channel_coverage",
        "serving_features",
        coverage.value_coverage,
        load=coverage.load_channels,
        settings={"max_unseen_share": "checks.coverage_max_unmapped_share"},
        deps=("category_mapping",),
        description="Blocking channel gate: the same statistic as on raw_transactions. An unseen channel "
        "is never silently 'not online': the online share of its customers turns NULL and is counted.",
    ),
    CheckDecl(
        "feature_parity",
        "serving_features",
        parity.parity,
        load=parity.load,
        settings=_PARITY,
        description="A seeded sample of tonight's customers recomputed by the training path and "
        "compared row by row: tolerance, missing rows and one-sided bias.",
    ),
    # ------------------------------------------------------------------ encoded features
    CheckDecl(
        "encoded_schema",
        "encoded_features",
        schemas.encoded_schema,
        load=schemas.load_encoded,
        description="Pandera schema: finite numbers, categorical levels in the deployed model's "
        "vocabulary, one row per customer, versions present.",
    ),
    CheckDecl(
        "category_coverage",
        "encoded_features",
        coverage.coverage_with_customers,
        load=coverage.load_categories_and_customers,
        settings={
            "max_unmapped_share": "checks.coverage_max_unmapped_share",
            "max_customer_share": "checks.coverage_max_customer_share",
        },
        deps=("category_mapping",),
        description="Blocking coverage gate: unmapped share of the night's rows and share of "
        "scored customers with an unseen category in their features.",
    ),
    CheckDecl(
        "imputation_ceiling",
        "encoded_features",
        imputation.imputation_ceiling,
        load=imputation.load_ledger,
        settings={"ceiling": "checks.imputation_ceiling"},
        description="Per-feature share of substituted cells (imputed or __unseen__) from the "
        "imputation ledger, against the ceiling.",
    ),
    CheckDecl(
        "missingness_pattern",
        "encoded_features",
        imputation.missingness_pattern,
        load=imputation.load_missingness,
        settings={
            "alpha": "checks.missingness_alpha",
            "min_lift": "checks.missingness_min_lift",
            "min_cells": "checks.missingness_min_cells",
        },
        description="Is missingness concentrated in a segment, region or category (chi-square, "
        "Bonferroni, lift)? Fires even under the imputation ceiling.",
    ),
    CheckDecl(
        "drift_bounds",
        "encoded_features",
        drift.drift_bounds,
        load=drift.load,
        settings={
            "warn_alpha": "checks.drift_warn_alpha",
            "error_alpha": "checks.drift_error_alpha",
            "min_psi": "checks.drift_min_psi",
            "min_js": "checks.drift_min_js",
        },
        severity="WARN or ERROR",
        description="Per-feature PSI (numeric) / Jensen-Shannon (categorical) against the model's "
        "reference profile; WARN and ERROR bands calibrated on the training period's day-to-day "
        "variability. Blocks on ERROR only.",
    ),
    CheckDecl(
        "daily_drift",
        "encoded_features",
        daily.daily_drift,
        load=daily.load,
        severity="WARN or ERROR",
        description="Slow one-directional change: a two-sided CUSUM of independent daily statistics of the "
        "raw layer (amount level against each category's training profile, online share, risky share), "
        "standardised per weekday, with WARN and ERROR thresholds calibrated at training for a stated "
        "in-control run length (in the result). Blocks on ERROR only.",
    ),
    # ------------------------------------------------------------------ scores (in the asset, before the write)
    CheckDecl(
        "scores_schema",
        "risk_scores",
        schemas.scores_schema,
        description="One row per encoded customer, score in [0, 1], unique ranks, versions present. "
        "Evaluated before the write: a failing night writes nothing.",
    ),
    CheckDecl(
        "score_sanity",
        "risk_scores",
        score_sanity,
        blocking=False,
        severity="WARN",
        settings={"psi_warn": "checks.score_psi_warn", "high_band_max_share": "checks.high_band_max_share"},
        description="Score distribution vs the validation scores (WARN).",
    ),
    CheckDecl(
        "realised_vs_validation",
        "realised_performance",
        realised_vs_validation,
        blocking=False,
        severity="WARN",
        settings={"max_auc_drop": "checks.realised_auc_drop_warn"},
        description="Realised ROC AUC and precision vs the model's validation figures (WARN).",
    ),
)

BY_LABEL: dict[str, CheckDecl] = {c.label: c for c in CHECKS}


def declared(asset: str, name: str) -> CheckDecl:
    return BY_LABEL[f"{asset}.{name}"]


def in_asset(asset: str) -> list[CheckDecl]:
    """The checks an asset evaluates itself (no loader)."""
    return [c for c in CHECKS if c.asset == asset and c.load is None]


QUARANTINING: tuple[CheckDecl, ...] = tuple(c for c in CHECKS if c.quarantines)


def judge_raw_day(step: Step) -> list[tuple[CheckDecl, Verdict, dict]]:
    """A loaded raw day judged by every quarantining check: each declaration, its verdict
    and its loader's extras (:func:`lookback.verdict_rows` makes the ``raw_verdicts`` rows)."""
    return lookback.raw_day_verdicts(step, CHECKS)
