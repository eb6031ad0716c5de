"""Model guards: the deployment gate and realised performance against validation."""

from __future__ import annotations

from risk_assets.checks import Verdict


def deployment_gate(
    candidate: str,
    validation: dict,
    candidate_spec_version: str,
    code_spec_version: str,
    parity_nights: list[dict],
    min_validation_roc_auc: float,
    min_precision_lift: float,
    candidate_vocabulary: dict | None = None,
    code_vocabulary: dict | None = None,
    constant_features: list[str] = (),
) -> Verdict:
    """Promote ``candidate`` only if its validation ROC AUC and precision lift (precision
    at the review budget / base rate) meet the minimums, it was trained on the feature
    spec the code computes now — with the share vocabulary the settings name now — and
    serving and training agreed on every recent night (``parity_nights``: ``{"night",
    "passed", "summary"}``; none is a refusal too). Features constant over the training
    period are flagged (they carry no signal), not refused."""
    lift = validation["precision_at_budget"] / validation["base_rate"] if validation["base_rate"] else 0.0
    reasons = []
    if validation["roc_auc"] < min_validation_roc_auc:
        reasons.append(f"validation ROC AUC {validation['roc_auc']:.3f} < {min_validation_roc_auc}")
    if lift < min_precision_lift:
        reasons.append(f"precision lift {lift:.2f} < {min_precision_lift}")
    if candidate_spec_version != code_spec_version:
        reasons.append(
            f"trained on feature spec {candidate_spec_version}, the code computes {code_spec_version}: retrain"
        )
    if candidate_vocabulary is not None and code_vocabulary is not None and candidate_vocabulary != code_vocabulary:
        changed = sorted(
            k
            for k in {*candidate_vocabulary, *code_vocabulary}
            if candidate_vocabulary.get(k) != code_vocabulary.get(k)
        )
        reasons.append(f"trained with another feature vocabulary ({', '.join(changed)} changed in [features]): retrain")
    if not parity_nights:
        reasons.append("no loaded night to verify serving/training parity on")
    reasons += [f"parity failed on {r['night']}: {r['summary']}" for r in parity_nights if not r["passed"]]
    return Verdict(
        passed=not reasons,
        severity="ERROR",
        summary=f"model {candidate} "
        + ("promoted" if not reasons else "refused: " + "; ".join(reasons))
        + (
            f" (constant over the training period, no signal: {', '.join(constant_features)})"
            if constant_features
            else ""
        ),
        figures={
            "candidate_version": candidate,
            "validation_roc_auc": validation["roc_auc"],
            "precision_lift": lift,
            "candidate_spec_version": candidate_spec_version,
            "code_spec_version": code_spec_version,
            "parity_nights_checked": len(parity_nights),
            "constant_features": ", ".join(constant_features) or "-",
        },
        thresholds={"min_validation_roc_auc": min_validation_roc_auc, "min_precision_lift": min_precision_lift},
        data={"reasons": reasons, "parity_nights": parity_nights},
    )


def realised_vs_validation(realised: dict, validation: dict, max_auc_drop: float) -> Verdict:
    """A night's realised ROC AUC (once its labels are known) against validation (WARN)."""
    drop = validation["roc_auc"] - realised["roc_auc"]
    return Verdict(
        passed=bool(drop <= max_auc_drop),
        severity="WARN",
        summary=f"realised ROC AUC {realised['roc_auc']:.3f} vs validation {validation['roc_auc']:.3f}"
        + (f": {drop:.3f} below, more than {max_auc_drop}" if drop > max_auc_drop else ""),
        figures={
            "realised_roc_auc": realised["roc_auc"],
            "validation_roc_auc": validation["roc_auc"],
            "realised_precision_at_budget": realised["precision_at_budget"],
            "validation_precision_at_budget": validation["precision_at_budget"],
            "positives": realised["positives"],
        },
        thresholds={"auc_drop_warn_at": max_auc_drop},
    )
