"""All settings of risk_assets in one typed object.

Defaults run the embedded demo world. A TOML file named by the environment variable
``RISK_ASSETS_CONFIG`` overrides any of them; unknown keys and invalid values fail at
load time with a message that names the key (``checks.imputation_ceiling: ...``).

These are the *production* settings: source, warehouse, engine, calendar, raw contract,
mapping, features, training, scoring, checks, alerts, automation, report, deployment and
overrides. The embedded world and its fault injection are one opaque section,
``[scenario]``, that this module does not read: :mod:`risk_assets.scenario` validates it
(:func:`risk_assets.scenario.settings.scenario_of`) when the definitions are built, and
refuses a fault switched on with any other source than the embedded world.

Every threshold lives here so that check results can write the value they used into
their metadata, and :func:`Settings.version` gives a short, stable fingerprint of the
whole object for audit trails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from risk_assets.core.features.spec import FeatureVocabulary
from risk_assets.core.night import Night

CONFIG_ENV_VAR = "RISK_ASSETS_CONFIG"

Share = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSettings(_Section):
    """Where raw data comes from."""

    kind: Literal["embedded", "landing"] = "embedded"
    """``embedded``: the deterministic synthetic world; ``landing``: parquet files in
    ``landing_dir`` following the landing contract (README)."""
    landing_dir: Path = Path("landing")


class WarehouseSettings(_Section):
    duckdb_path: Path = Path(".risk_assets/warehouse.duckdb")
    """The DuckDB file every asset is stored in (one writing process at a time)."""
    lock_timeout_seconds: Annotated[float, Field(gt=0.0, le=86_400.0)] = 600.0
    """How long a step waits for another process's lock on the file before it fails
    (concurrent runs take turns; README: Concurrency)."""


class EngineSettings(_Section):
    """Where the computations that grow with the transaction history run (README: "When
    one machine is not enough")."""

    kind: Literal["duckdb", "spark"] = "duckdb"
    """``duckdb``: everything in the warehouse file (the embedded default). ``spark``: the
    raw partitions are also committed to ``lake_path`` as Parquet, and the serving and
    training features and the scoring run on Spark (Spark Connect) from the same feature
    spec; the per-night results, the checks and the registry stay in the warehouse."""
    spark_remote: str = "local[2]"
    """Spark Connect address: ``sc://host:15002`` for a cluster; ``local[N]`` starts a local
    Connect server (needs Java 17) for development and tests."""
    lake_path: Path = Path(".risk_assets/lake")
    """Root of the Parquet lake (a local or mounted folder; object stores: see README)."""


class CalendarSettings(_Section):
    timezone: str = "UTC"
    """Business timezone of the daily partitions (IANA name)."""
    partitions_start: dt.date = dt.date(2025, 1, 1)
    holidays_country: str | None = None
    """ISO country code for public holidays (the ``holidays`` package, offline), e.g. "AT".
    Level checks judge a holiday as a holiday. None: no public holidays."""
    holidays_subdivision: str | None = None
    """State or region within the country, when its holidays differ (e.g. "BY" in "DE")."""
    extra_holidays: tuple[dt.date, ...] = ()
    """Further closing days of the business (judged like public holidays)."""

    @field_validator("holidays_country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None:
            import holidays

            if value not in holidays.list_supported_countries():
                raise ValueError(f"unknown holiday country {value!r} (ISO 3166 code supported by `holidays`)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value


class RawSettings(_Section):
    max_amount: Annotated[float, Field(gt=0.0)] = 1_000_000.0
    """Amounts above this (currency units) are rejected as implausible."""
    max_text_length: PositiveInt = 128
    """Identifiers and category/channel strings longer than this are rejected."""


class MappingSettings(_Section):
    """Category mapping: raw category -> canonical category -> code."""

    aliases: dict[str, str] = {}
    """Raw category names mapped onto an existing canonical category (renames and
    merges). Adding one creates a new mapping version."""


class FeatureSettings(_Section):
    """Which of the source's values the share features count. Defaults: the embedded
    world's names; a source with other names sets its own (training refuses a group that
    names a value the training period never saw)."""

    cash_categories: tuple[str, ...] = ("cash_withdrawal",)
    transfer_categories: tuple[str, ...] = ("money_transfer",)
    gambling_categories: tuple[str, ...] = ("gambling",)
    online_channels: tuple[str, ...] = ("online", "transfer")

    def vocabulary(self) -> FeatureVocabulary:
        return FeatureVocabulary(
            cash=self.cash_categories,
            transfer=self.transfer_categories,
            gambling=self.gambling_categories,
            online=self.online_channels,
        )


class TrainingSettings(_Section):
    """Training and validation periods (as-of days) and LightGBM parameters."""

    start: dt.date = dt.date(2025, 2, 1)
    end: dt.date = dt.date(2026, 5, 31)
    asof_step_days: PositiveInt = 8
    """Every n-th day is an as-of day of the training spine (8 cycles through weekdays)."""
    validation_start: dt.date = dt.date(2026, 7, 1)
    validation_end: dt.date = dt.date(2026, 7, 31)
    validation_step_days: PositiveInt = 3
    num_boost_round: PositiveInt = 200
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05
    num_leaves: Annotated[int, Field(ge=2, le=1024)] = 31
    min_data_in_leaf: PositiveInt = 100
    seed: int = 7

    @model_validator(mode="after")
    def _no_leakage(self) -> TrainingSettings:
        if self.end < self.start:
            raise ValueError("training.end is before training.start")
        labels_end = Night(self.end).labels_known_after
        if self.validation_start <= labels_end:
            raise ValueError(
                f"validation_start must be after the last training label ({labels_end}): "
                "labels look 30 days ahead, so an earlier validation period leaks"
            )
        if self.validation_end < self.validation_start:
            raise ValueError("validation_end is before validation_start")
        return self


class ScoringSettings(_Section):
    review_budget: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.02
    """Share of scored customers the risk team reviews each morning (band 'high')."""
    models_dir: Path = Path(".risk_assets/models")
    """Where trained models are saved (LightGBM text format + a JSON model card)."""


class CheckSettings(_Section):
    """Every guard threshold. Each check writes the values it used into its result."""

    max_rejected_share: Share = 0.01
    """raw: rows rejected by the contract, as a share of rows received (ERROR above)."""
    min_volume_share: Share = 0.5
    """raw: rows accepted as a share of the median of the same weekday in the previous
    weeks, holidays apart (ERROR below; a day with no rows at all is always an ERROR)."""
    holiday_min_volume_share: Share = 0.15
    """raw: the same on a public holiday (``calendar.holidays_country``), which is quiet by nature."""
    max_replayed_share: Share = 0.01
    """raw: rows repeating another row of the night in every field but the transaction id, as a
    share of the night's accepted rows (ERROR above): a file re-sent under fresh ids."""
    max_pileup_factor: Annotated[float, Field(gt=1.0)] = 4.0
    """raw: ERROR when tonight's most repeated amount holds this many times the share of rows
    the recent days' most repeated amount held (and at least 8 rows): amounts clipped at a
    limit. On ~300 clean days of each test world (4,000 customers) no amount held more than 3
    rows of a day; the factor alone reached 14× on an 11-row day, hence the row floor."""
    max_volume_share: Annotated[float, Field(gt=1.0)] = 2.0
    """raw: ERROR above this multiple of the same expectation — a day can be too large as well
    as too small (a file delivered twice under fresh ids, another source's rows mixed in).
    Clean days of the test worlds reach 1.44 at 4,000 customers (a small Sunday)."""
    max_amount_factor: Annotated[float, Field(gt=1.0)] = 4.0
    """raw: ERROR when the night's amounts sit this many times above (or below) the recent
    level of the same categories — a unit change (cents for euros) states its factor."""
    profile_max_z: Annotated[float, Field(gt=0.0)] = 7.0
    """raw: ``night_profile`` ERROR (blocking) when a statistic of a value is more than this
    many robust deviations from its comparable healthy days (and moved by ``profile_min_ratio``).
    Calibrated to :attr:`budget_blocked_nights` with ``python -m benchmarks.calibration``: the
    budget implies 4.8 (embedded) and 5.1 (alpine) on 244 calibration days; the largest
    statistic of the 121 held-out clean days after them reached 4.8 and 6.5 — 7 leaves a margin
    for sources noisier than the test worlds."""
    profile_warn_z: Annotated[float, Field(gt=0.0)] = 5.0
    """raw: ``night_profile`` WARN from this many robust deviations: above the 95th percentile
    of the clean days' largest statistic on both worlds (4.1 and 4.2), so the profile takes
    about 2% of clean nights and leaves the rest of :attr:`budget_warn_nights` to the other
    checks (``benchmarks/results/calibration_4000.json``)."""
    profile_min_ratio: Annotated[float, Field(gt=1.0)] = 1.5
    """raw: ``night_profile`` counts a statistic only when it moved by at least this factor,
    either way (a share halved, an amount quantile ×1.5): a tiny but 'significant' move of a
    huge value is not an incident."""
    max_reclassified_share: Share = 0.05
    """reference: ``customer_changes`` ERROR (blocking every night the version is valid) when
    more than this share of the customers present before and after a customers delivery
    changed an attribute (segment, region, opening date): a mass re-classification. New and
    dropped accounts are counted, not judged."""
    profile_large_ratio: Annotated[float, Field(gt=1.0)] = 3.0
    """raw: the factor from which a ``night_profile`` statistic needs only ``profile_large_z``."""
    profile_large_z: Annotated[float, Field(gt=0.0)] = 4.0
    """raw: ``night_profile`` is also an ERROR from this many robust deviations when the
    statistic moved by ``profile_large_ratio`` or more either way (a value losing most of its
    rows): on the clean days of both worlds no judged statistic ever moved 3× (the calibration
    reports the largest z among those that did, and the power the tier adds)."""
    budget_blocked_nights: Share = 1 / 90
    """The suite's false-alarm budget: clean nights any check may block (default one in 90).
    The thresholds of the many-statistic checks are calibrated to it on held-out clean days
    (``benchmarks.calibration``); ``benchmarks.false_alarms`` measures the whole suite against it."""
    budget_warn_nights: Share = 0.05
    """The suite's WARN budget: clean nights with any WARN (default 5%)."""
    coverage_max_unmapped_share: Share = 0.005
    """Share of the night's rows whose category has no mapping (ERROR above)."""
    coverage_max_customer_share: Share = 0.02
    """Share of scored customers with an unseen category in their features (ERROR above)."""
    imputation_ceiling: Share = 0.02
    """Per-feature share of rows substituted by encoding (ERROR above)."""
    missingness_alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.001
    """Family-wise significance of the missingness-concentration tests (Bonferroni)."""
    missingness_min_lift: Annotated[float, Field(ge=1.0)] = 3.0
    """A group must carry this many times the overall missing rate to count as concentrated."""
    missingness_min_cells: PositiveInt = 5
    drift_warn_alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    """Nightly family-wise false-alarm rate that calibrates the WARN band."""
    drift_error_alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.001
    """Nightly family-wise false-alarm rate that calibrates the ERROR band."""
    drift_min_psi: Annotated[float, Field(ge=0.0)] = 0.02
    """Materiality floor of a numeric feature's WARN band (PSI; the ERROR band's is 2.5×)."""
    drift_min_js: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02
    """Materiality floor of a categorical feature's WARN band (Jensen–Shannon distance)."""
    daily_k: Annotated[float, Field(ge=0.0)] = 0.5
    """CUSUM slack of the daily drift monitor, in standard deviations of a daily statistic."""
    daily_warn_arl: Annotated[float, Field(ge=10.0, le=100_000.0)] = 250.0
    """In-control average run length (nights) to a false WARN; ``h`` is calibrated for it."""
    daily_error_arl: Annotated[float, Field(ge=10.0, le=100_000.0)] = 1000.0
    """In-control average run length (nights) to a false ERROR."""
    daily_nights: PositiveInt = 120
    """Nights the daily drift monitor looks back over (from the end of its calibration)."""
    daily_calibration_days: Annotated[int, Field(ge=20)] = 100
    """Raw days before the end of validation the monitor is calibrated on, at training."""
    parity_sample: PositiveInt = 2000
    parity_seed: int = 11
    parity_atol: Annotated[float, Field(ge=0.0)] = 1e-9
    parity_rtol: Annotated[float, Field(ge=0.0)] = 1e-9
    parity_categorical_tolerance: Share = 0.0
    """Share of sampled rows whose categorical features may differ between the paths."""
    parity_bias_alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.001
    parity_min_nonzero: PositiveInt = 10
    realised_auc_drop_warn: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    """WARN when a night's realised ROC AUC is this far below the validation ROC AUC."""
    score_psi_warn: Annotated[float, Field(gt=0.0)] = 0.25
    high_band_max_share: Share = 0.05
    """WARN when more than this share of customers scores above the validation p98."""

    @model_validator(mode="after")
    def _bands(self) -> CheckSettings:
        if self.drift_error_alpha >= self.drift_warn_alpha:
            raise ValueError("drift_error_alpha must be smaller than drift_warn_alpha")
        return self


class AlertSettings(_Section):
    """Where alerts go: always the `alerts` table and the log; optionally a webhook."""

    duckdb_path: Path = Path(".risk_assets/alerts.duckdb")
    """Alerts live in their own small DuckDB file: sensors write them from the daemon
    while runs write the warehouse, and DuckDB allows one writing process per file."""
    webhook_url: str | None = None
    """POST each alert as JSON here (e.g. a chat incoming-webhook). Empty: no webhook."""
    webhook_timeout_seconds: Annotated[float, Field(gt=0.0, le=60.0)] = 5.0
    ui_base_url: str = "http://127.0.0.1:3000"
    """Base URL of the Dagster UI, for the run links in alerts."""
    scores_deadline_cron: str = "0 7 * * *"
    """risk_scores for yesterday must exist by this time (business timezone), or the
    freshness check fails: a night that never ran is as loud as one that failed."""

    @field_validator("webhook_url", "ui_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        # urllib would also open file:// and ftp:// URLs: only web addresses are accepted.
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        if value is not None and not urlsplit(value).netloc:
            raise ValueError(f"has no host: {value!r}")
        return value


class AutomationSettings(_Section):
    """What Dagster's daemon starts by itself in a new instance."""

    clock_running: bool = True
    """The clock-driven automation — the nightly and performance schedules and the
    freshness sensor — starts RUNNING. False: it starts STOPPED (start it in the UI's
    Automation page): an instance replaying past nights, like the demo's, would
    otherwise run the real calendar's "yesterday" and fail freshness at once. The alert
    and landing sensors always start running."""
    landing_poll_seconds: Annotated[int, Field(ge=5, le=3600)] = 60
    """How often the landing sensor looks at the landing folder (and for runs whose
    process died): the longest a delivered day waits before its run is requested."""


class ReportSettings(_Section):
    """The per-night HTML report (``risk-assets report``, and after every nightly run)."""

    dir: Path = Path(".risk_assets/reports")
    nights: Annotated[int, Field(ge=2, le=366)] = 30
    """How many nights the report's history plots cover."""
    after_each_night: bool = True
    """Write the report when a nightly run ends (the run-status sensors) and link it from
    the night's risk_scores partition in the UI."""


class DeploymentSettings(_Section):
    """The gate a newly trained model must pass before serving uses it."""

    min_validation_roc_auc: Annotated[float, Field(ge=0.5, le=1.0)] = 0.70
    min_precision_lift: Annotated[float, Field(ge=1.0)] = 2.0
    """Precision at the review budget on validation, divided by the base rate."""
    parity_nights: PositiveInt = 3
    """The most recent loaded nights on which serving and training paths must agree."""


class OverrideSettings(_Section):
    """A deliberate override: who relaxed which thresholds, and why. When set, every
    check result carries it, so the audit trail shows it next to the thresholds used."""

    by: str | None = None
    reason: str | None = None
    accept_days: tuple[dt.date, ...] = ()
    """Quarantined raw days accepted as they are: the nights whose look-back reads them are
    no longer blocked by ``lookback_health`` (the day's own failed checks stay on record)."""
    accept_drift: tuple[Literal["amount_level", "online_share", "risky_share"], ...] = ()
    """Daily statistics whose drift is understood and accepted until a retrain: the daily
    drift monitor leaves them out and says so in every result; the others stay watched."""

    accept_customer_versions: tuple[str, ...] = ()
    """Customers versions (``customers_version`` of the delivery, as the ``customer_changes``
    result names it) whose re-classification is understood and accepted: the nights they are
    valid for are no longer blocked by it (the changes stay on record)."""

    profile_baseline_from: dict[str, dt.date] = Field(default_factory=dict)
    """A lasting change accepted in the night profile: ``"column"`` or ``"column=value"``
    (``category``, ``channel``, ``segment``, ``region``, or ``day`` for the day as a whole)
    to the first day of the new normal. From that night on, the column's (or the value's)
    statistics are compared only with days from that date, so they are judged again once
    enough such days are loaded (four of the same weekday) — and not measured against the
    world before the change. Every result names the restarts in force."""

    @field_validator("profile_baseline_from")
    @classmethod
    def _profile_keys(cls, value: dict[str, dt.date]) -> dict[str, dt.date]:
        columns = ("day", "category", "channel", "segment", "region")
        for key in value:
            column, _, rest = key.partition("=")
            if column not in columns or ("=" in key and not rest):
                raise ValueError(
                    f"profile_baseline_from: {key!r} is not 'column' or 'column=value' with a column of {columns}"
                )
        return value

    @model_validator(mode="after")
    def _both(self) -> OverrideSettings:
        if bool(self.by) != bool(self.reason):
            raise ValueError("an override needs both 'by' and 'reason'")
        overrides = self.accept_days or self.accept_drift or self.accept_customer_versions or self.profile_baseline_from
        if overrides and not self.by:
            raise ValueError(
                "accept_days, accept_drift, accept_customer_versions and profile_baseline_from are overrides: "
                "they need 'by' and 'reason'"
            )
        return self


class Settings(_Section):
    source: SourceSettings = SourceSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    engine: EngineSettings = EngineSettings()
    calendar: CalendarSettings = CalendarSettings()
    raw: RawSettings = RawSettings()
    mapping: MappingSettings = MappingSettings()
    features: FeatureSettings = FeatureSettings()
    training: TrainingSettings = TrainingSettings()
    scoring: ScoringSettings = ScoringSettings()
    checks: CheckSettings = CheckSettings()
    alerts: AlertSettings = AlertSettings()
    automation: AutomationSettings = AutomationSettings()
    report: ReportSettings = ReportSettings()
    deployment: DeploymentSettings = DeploymentSettings()
    override: OverrideSettings = OverrideSettings()
    scenario: dict[str, Any] = Field(default_factory=dict)
    """The embedded world and its faults (``[scenario]``), as written: validated and read
    only by :mod:`risk_assets.scenario`."""

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.calendar.timezone)

    def version(self) -> str:
        """A short fingerprint of every value, recorded with each materialisation."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def with_overrides(self, **sections: dict) -> Settings:
        """A copy with some sections' keys replaced, validated like a file would be."""
        data = self.model_dump(mode="json")
        for section, values in sections.items():
            data[section] = _deep_merge(data.get(section, {}), values)
        return settings_from_mapping(data)


class SettingsError(ValueError):
    """Invalid settings; the message names every offending key."""


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


MOVED_KEYS: dict[str, str] = {
    "world": "scenario.world",
    "serving_skew": "scenario.serving_skew",
}
"""Top-level sections that moved: old key -> new key (a clear error, not a silent ignore)."""


def settings_from_mapping(data: dict, origin: str = "settings") -> Settings:
    moved = [
        f"{old}: the section [{old}] moved to [{new}] (the embedded world's scenario lives apart "
        f"from production settings); rename it, keys unchanged: {old}.KEY -> {new}.KEY"
        for old, new in MOVED_KEYS.items()
        if old in data
    ]
    if moved:
        raise SettingsError(f"invalid {origin}:\n  " + "\n  ".join(moved))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()]
        raise SettingsError(f"invalid {origin}:\n  " + "\n  ".join(problems)) from None


def load_settings(path: str | os.PathLike | None = None, home: str | os.PathLike | None = None) -> Settings:
    """Settings from ``path``, else from ``$RISK_ASSETS_CONFIG``, else the defaults.

    Relative paths (DuckDB files, landing folder, models, reports, lake) are resolved
    against the settings file's folder, so a file works from any working directory; with
    no file, against the Dagster instance folder ``home`` (default ``$DAGSTER_HOME``) — one
    home, one world: two instances never share the default warehouse — and only when no
    home is known either (a bare ``dagster dev``), against the working directory.
    """
    path = path or os.environ.get(CONFIG_ENV_VAR)
    if not path:
        home = home or os.environ.get("DAGSTER_HOME")
        return resolve_paths(Settings(), Path(home).resolve()) if home else Settings()
    file = Path(path)
    if not file.is_file():
        raise SettingsError(f"{CONFIG_ENV_VAR}: no settings file at {file}")
    try:
        data = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{file}: not valid TOML: {exc}") from None
    return resolve_paths(settings_from_mapping(data, origin=str(file)), file.resolve().parent)


def resolve_paths(settings: Settings, base: Path) -> Settings:
    """Every relative path of ``settings`` made absolute against ``base`` (absolute ones kept)."""
    return settings.model_copy(
        update={
            "source": settings.source.model_copy(update={"landing_dir": base / settings.source.landing_dir}),
            "warehouse": settings.warehouse.model_copy(update={"duckdb_path": base / settings.warehouse.duckdb_path}),
            "scoring": settings.scoring.model_copy(update={"models_dir": base / settings.scoring.models_dir}),
            "alerts": settings.alerts.model_copy(update={"duckdb_path": base / settings.alerts.duckdb_path}),
            "report": settings.report.model_copy(update={"dir": base / settings.report.dir}),
            "engine": settings.engine.model_copy(update={"lake_path": base / settings.engine.lake_path}),
        }
    )


def to_toml(settings: Settings) -> str:
    """The settings as a TOML file :func:`load_settings` reads back to equal settings
    (every key written, unset optional keys left out). Paths are written as they are:
    make them absolute first when the file will live elsewhere."""
    lines: list[str] = []

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(i) for i in v) + "]"
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string

    def section(name: str, data: dict) -> None:
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and v is not None}
        if scalars:
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
            lines.append("")
        for k, v in data.items():
            if isinstance(v, dict):
                section(f"{name}.{k}", v)

    for name, data in settings.model_dump(mode="json").items():
        section(name, data)
    return "\n".join(lines)
