"""The category mapping: raw category -> canonical category -> integer code.

Built from the categories seen in the training period (each maps to itself) plus
explicit aliases for renames and merges (``settings.mapping.aliases``). Anything not in
the mapping is ``__unseen__`` downstream — counted, never silently null. The version is
a fingerprint of the rows, so an added alias is a new, recorded version.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from risk_assets.core.features.spec import NONE, UNSEEN

MAPPING_COLUMNS = [
    "version",
    "raw_category",
    "canonical",
    "code",
    "origin",
    "training_rows",
    "training_amount_cents",
    "training_log_amount_mean",
    "training_log_amount_std",
]


class MappingError(ValueError):
    pass


def build_mapping(seen: pd.DataFrame, aliases: dict[str, str], channels: pd.DataFrame | None = None) -> pd.DataFrame:
    """``seen``: ``raw_category, rows, amount_cents, log_amount_mean, log_amount_std`` over
    the training period (volumes and amount profiles feed the coverage check).
    ``channels``: ``channel, rows`` seen in the training period — part of the version, so
    a new channel vocabulary is a new mapping version too."""
    seen = seen.sort_values("raw_category").reset_index(drop=True)
    canonical = list(seen["raw_category"])
    reserved = {UNSEEN, NONE} & set(canonical)
    if reserved:
        raise MappingError(f"raw categories may not use reserved names {sorted(reserved)}")
    codes = {c: i for i, c in enumerate(canonical)}
    rows = [
        {
            "raw_category": r.raw_category,
            "canonical": r.raw_category,
            "code": codes[r.raw_category],
            "origin": "training",
            "training_rows": int(r.rows),
            "training_amount_cents": int(r.amount_cents),
            "training_log_amount_mean": float(r.log_amount_mean),
            "training_log_amount_std": float(r.log_amount_std),
        }
        for r in seen.itertuples(index=False)
    ]
    for raw, target in sorted(aliases.items()):
        if target not in codes:
            raise MappingError(
                f"mapping.aliases.{raw}: target {target!r} is not a canonical category (known: {', '.join(canonical)})"
            )
        if raw in codes:
            raise MappingError(f"mapping.aliases.{raw}: {raw!r} is already a canonical category")
        rows.append(
            {
                "raw_category": raw,
                "canonical": target,
                "code": codes[target],
                "origin": "alias",
                "training_rows": 0,
                "training_amount_cents": 0,
                "training_log_amount_mean": None,
                "training_log_amount_std": None,
            }
        )
    frame = pd.DataFrame(rows, columns=MAPPING_COLUMNS[1:])
    payload = frame[["raw_category", "canonical", "code"]].to_csv(index=False)
    if channels is not None:
        payload += "\nchannels:" + ",".join(sorted(channels["channel"]))
    frame.insert(0, "version", hashlib.sha256(payload.encode()).hexdigest()[:12])
    return frame


def canonical_levels(mapping: pd.DataFrame) -> list[str]:
    return sorted(set(mapping["canonical"]))


def channel_vocabulary(version: str, channels: pd.DataFrame) -> pd.DataFrame:
    """The channels of the training period, stored with the mapping version."""
    out = channels.rename(columns={"rows": "training_rows"}).sort_values("channel").reset_index(drop=True)
    return out.assign(version=version)[["version", "channel", "training_rows"]]
