"""Settings: packaged YAML defaults, a user YAML file, environment variables.

Layers, later wins:

1. ``smci_dask/defaults.yaml`` (shipped with the package);
2. a user YAML file (``--config FILE`` on the CLI, ``SMCI_CONFIG`` in the
   environment, or the ``path`` argument of :func:`load_config`);
3. environment variables ``SMCI__SECTION__KEY=value`` (values parsed as YAML);
4. explicit ``overrides`` (a nested dict, used by the CLI options).

The merged mapping is validated by pydantic models with ``extra="forbid"``,
so a misspelt key or a value outside the allowed set is reported with its
dotted path and the allowed values. Dask itself is configured the dask way:
cluster details for dask-jobqueue come from ``dask.config`` (``jobqueue.slurm``
...), which reads ``~/.config/dask/*.yaml`` and ``DASK_*`` variables itself.
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smci_dask import conventions as cv
from smci_dask.errors import ConfigError

ENV_PREFIX = "SMCI__"
ENV_CONFIG_FILE = "SMCI_CONFIG"
_SECRET_WORDS = ("key", "secret", "token", "password", "credential")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class RegionConfig(_Strict):
    name: Literal["tiny", "small", "medium", "china", "custom"] = "small"
    bbox: tuple[float, float, float, float] | None = None

    @model_validator(mode="after")
    def _bbox_for_custom(self) -> RegionConfig:
        if self.name == "custom" and self.bbox is None:
            raise ValueError("region.name is 'custom' but region.bbox is not set: give [west, south, east, north]")
        if self.bbox is not None:
            w, s, e, n = self.bbox
            if not (w < e and s < n):
                raise ValueError(f"region.bbox {list(self.bbox)} must be [west, south, east, north] with west < east and south < north")
            if not (-180 <= w and e <= 180 and -90 <= s and n <= 90):
                raise ValueError(f"region.bbox {list(self.bbox)} lies outside -180..180 E, -90..90 N")
        return self


class StoreConfig(_Strict):
    root: str = "./smci-data"
    storage_options: dict[str, Any] = Field(default_factory=dict)


class LocalClusterConfig(_Strict):
    n_workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str | int | float = "4GiB"
    processes: bool = True
    dashboard_address: str | None = ":0"


class JobqueueConfig(_Strict):
    jobs: int = Field(1, ge=0)
    adaptive: bool = False
    minimum_jobs: int = Field(1, ge=0)
    maximum_jobs: int = Field(10, ge=1)


class KubernetesConfig(_Strict):
    name: str = "smci"
    namespace: str | None = None
    image: str = "ghcr.io/smci-dask/smci-dask:latest"
    n_workers: int = Field(2, ge=0)
    resources: dict[str, dict[str, str]] = Field(default_factory=dict)
    secret: str | None = "smci-object-store"
    secret_keys: list[str] = Field(default_factory=list)
    env_from_driver: list[str] = Field(default_factory=list)


class ClusterConfig(_Strict):
    kind: cv.ClusterKind = "local"
    local: LocalClusterConfig = Field(default_factory=LocalClusterConfig)
    address: str | None = None
    jobqueue: JobqueueConfig = Field(default_factory=JobqueueConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    wait_for_workers_timeout: float = Field(120, gt=0)

    @model_validator(mode="after")
    def _address_given(self) -> ClusterConfig:
        if self.kind == "address" and not self.address:
            raise ValueError("cluster.kind is 'address' but cluster.address is not set: give e.g. tcp://host:8786")
        return self


class SearchConfig(_Strict):
    """``model.search``: the grid, the CV and the engine. Keys left unset come from the named profile."""

    profile: str = "paper"
    engine: Literal["tasks", "dask-ml"] = "tasks"
    strategy: Literal["grid", "halving"] = "grid"
    eta: int = Field(4, ge=2)
    cv: Literal["grouped_station", "random", "grouped_year"] = "grouped_station"
    max_features: list[int] = Field(default_factory=lambda: [1, 5, 10, 15, 20, 25])
    min_samples_leaf: list[int] = Field(default_factory=lambda: [5, 10, 15, 20, 25])
    n_folds: int = Field(10, ge=2)
    n_iter: int | None = Field(None, ge=1)
    cv_optimism: bool = True
    seed: int = 0

    @field_validator("max_features", "min_samples_leaf")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(x < 1 for x in v):
            raise ValueError("must be a non-empty list of integers >= 1")
        return v


#: Keys a search profile may set: top-level model keys and model.search keys.
_PROFILE_MODEL_KEYS = ("n_estimators", "subsample", "max_depth", "members", "ensemble")
_PROFILE_SEARCH_KEYS = ("engine", "strategy", "eta", "cv", "max_features", "min_samples_leaf", "n_folds", "n_iter", "cv_optimism", "seed")


def _packaged_profiles() -> dict[str, dict[str, Any]]:
    return copy.deepcopy(default_mapping().get("model", {}).get("profiles", {}))


class ModelConfig(_Strict):
    """``model``: members, forest settings, the search; ``profiles`` name sets of values (``model.search.profile``).

    A key set explicitly (packaged defaults aside: a user file, ``SMCI__``
    variables, CLI options, or the constructor) wins over the profile's value.
    """

    members: list[Literal["lightgbm", "xgboost", "sklearn"]] = Field(default_factory=lambda: ["lightgbm", "xgboost"])
    ensemble: Literal["mean", "weights"] = "mean"
    n_estimators: int = Field(200, ge=1)
    subsample: float = Field(0.632, gt=0, le=1)
    max_depth: int | None = Field(None, ge=1)
    max_samples: int | None = Field(None, ge=1)
    max_leaves: int | None = Field(None, ge=2)
    residual: bool = True
    run: str | None = None
    search: SearchConfig = Field(default_factory=SearchConfig)
    profiles: dict[str, dict[str, Any]] = Field(default_factory=_packaged_profiles)

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        search = data.get("search")
        search = dict(search) if isinstance(search, dict) else ({} if search is None else search)
        if not isinstance(search, dict):
            return data
        profiles = data.get("profiles") or _packaged_profiles()
        name = search.get("profile") or "paper"
        if name not in profiles:
            raise ValueError(f"model.search.profile {name!r} is not a profile; known: {', '.join(sorted(profiles))} (model.profiles)")
        prof = profiles[name] or {}
        for key, value in prof.items():
            if key == "search":
                for skey, svalue in (value or {}).items():
                    if skey not in _PROFILE_SEARCH_KEYS:
                        raise ValueError(f"model.profiles.{name}.search.{skey}: a profile may set {', '.join(_PROFILE_SEARCH_KEYS)}")
                    if search.get(skey) is None:
                        search[skey] = copy.deepcopy(svalue)
            elif key in _PROFILE_MODEL_KEYS:
                if data.get(key) is None:
                    data[key] = copy.deepcopy(value)
            else:
                raise ValueError(f"model.profiles.{name}.{key}: a profile may set {', '.join(_PROFILE_MODEL_KEYS)} and search")
        data["search"] = search
        return data

    @field_validator("members")
    @classmethod
    def _some_members(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one of 'lightgbm', 'xgboost', 'sklearn'")
        return v

    @model_validator(mode="after")
    def _weights_need_oof(self) -> ModelConfig:
        if self.ensemble == "weights" and self.search.engine == "dask-ml":
            raise ValueError(
                "model.ensemble 'weights' is fitted on out-of-fold predictions, which only model.search.engine 'tasks' keeps; "
                "use engine 'tasks' or ensemble 'mean'"
            )
        if self.run is not None and (not self.run or "/" in self.run or self.run in (".", "..")):
            raise ValueError(f"model.run {self.run!r} must be a name without '/' (or null for a timestamp)")
        return self


class MatchingConfig(_Strict):
    layers: dict[int, Literal[1, 2, 3, 4]] = Field(default_factory=lambda: {d: (2 if d <= 30 else 3) for d in cv.DEPTHS_CM})

    @field_validator("layers")
    @classmethod
    def _known_depths(cls, v: dict[int, int]) -> dict[int, int]:
        bad = sorted(set(v) - set(cv.DEPTHS_CM))
        if bad:
            raise ValueError(f"depths {bad} are not product depths; allowed: {list(cv.DEPTHS_CM)}")
        return v


#: The ISMN quality-control codes (Dorigo et al. 2013), as smci_dask.insitu.qc.QcCode.
QcFlagCode = Literal["C01", "C02", "C03", "D01", "D02", "D03", "D04", "D05", "D06", "D07", "D08", "D09", "D10"]


class InsituConfig(_Strict):
    """``insitu``: the rules from hourly station readings to daily targets (smci_dask.insitu.daily, qc)."""

    min_hours: int = Field(12, ge=1, le=24)
    fill_max_distance_days: int = Field(5, ge=0)
    max_gap_days: int = Field(10, ge=0)
    utc_offset_hours: dict[str, float] = Field(default_factory=dict)
    bad_flags: list[QcFlagCode] = Field(default_factory=lambda: list(QcFlagCode.__args__))  # type: ignore[attr-defined]
    layer_rule: Literal["nearest_centre", "overlap"] = "nearest_centre"
    layer_max_distance_cm: float = Field(10.0, ge=0)
    layer_max_width_cm: float = Field(15.0, gt=0)
    gridded_ancillary: bool = True

    @field_validator("utc_offset_hours")
    @classmethod
    def _offsets(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not -12 <= x <= 14}
        if bad:
            raise ValueError(f"offsets {bad} lie outside -12..+14 hours; give the network's UTC offset, e.g. {{CMA: 8}}")
        return v


class YearExperimentConfig(_Strict):
    test_years: list[int] | None = None


class StationExperimentConfig(_Strict):
    train_fraction: float = Field(0.6667, gt=0, lt=1)
    seed: int = 42


class ExperimentsConfig(_Strict):
    year: YearExperimentConfig = Field(default_factory=YearExperimentConfig)
    station: StationExperimentConfig = Field(default_factory=StationExperimentConfig)
    # search: each experiment runs its own search per depth; final: reuse the parameters chosen by the
    # run's final models (models/<run>/final/<depth>cm card) where present, searching the other depths.
    reuse_params: Literal["search", "final"] = "search"


class ProductConfig(_Strict):
    """One extra gridded product scored beside ours: Zarr or NetCDF with lat/lon/time and a depth or layer dimension."""

    url: str
    variable: str
    # product depth (cm) -> value (or position, with depth_index) along the product's depth dimension; depths absent are not scored
    depth_map: dict[int, float | int | str] = Field(default_factory=dict)
    depth_dim: str | None = None
    depth_index: bool = False
    # multiply the values by this to get m3/m3 (e.g. 0.01 for percent)
    scale: float = 1.0
    storage_options: dict[str, Any] = Field(default_factory=dict)


class EvaluationConfig(_Strict):
    products: dict[str, ProductConfig] = Field(default_factory=dict)
    # bootstrap draws (resampling stations) for the 95 % confidence intervals; 0 = none
    bootstrap: int = Field(200, ge=0)
    # permutation-importance repeats per feature and family
    importance_repeats: int = Field(3, ge=1)
    # at most this many test rows per depth enter the permutation importance (seeded sample)
    importance_rows: int = Field(20000, ge=100)
    seed: int = 0


class InferenceConfig(_Strict):
    tile_size: int = Field(512, ge=8)
    time_block: int = Field(32, ge=1)
    write_days: int = Field(8, ge=1)
    interpolation: cv.Interpolation = "nearest"
    experiment: str = "final"
    last_days: int | None = Field(None, ge=1)
    product_9km: Literal["predicted", "mean_of_1km"] = "predicted"
    uncertainty: bool = False


class SyntheticConfig(_Strict):
    seed: int = 20220101


class StationInputConfig(_Strict):
    paths: list[str] = Field(default_factory=list)
    format: Literal["ismn", "csv", "parquet"] = "ismn"


class InputsConfig(_Strict):
    """Where `smci run` finds the raw inputs: files, folders or globs, local or any fsspec URL."""

    era5land: list[str] = Field(default_factory=list)
    lai: list[str] = Field(default_factory=list)
    static: list[str] = Field(default_factory=list)
    stations: StationInputConfig = Field(default_factory=StationInputConfig)
    # Passed to fsspec for the input files (the store has its own).
    storage_options: dict[str, Any] = Field(default_factory=dict)


class RefreshConfig(_Strict):
    """`smci refresh`: what to do with revised inputs and how to share the store with another refresh."""

    recompute_revised: bool = False
    backfill: bool = False
    lease_ttl_seconds: float = Field(900.0, gt=0)
    wait_seconds: float = Field(0.0, ge=0)


class Config(_Strict):
    """The validated settings. Build it with :func:`load_config`."""

    region: RegionConfig = Field(default_factory=RegionConfig)
    years: tuple[int, int] | None = None
    store: StoreConfig = Field(default_factory=StoreConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    matching: MatchingConfig = Field(default_factory=MatchingConfig)
    insitu: InsituConfig = Field(default_factory=InsituConfig)
    experiments: ExperimentsConfig = Field(default_factory=ExperimentsConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    inputs: InputsConfig = Field(default_factory=InputsConfig)
    refresh: RefreshConfig = Field(default_factory=RefreshConfig)

    @field_validator("years")
    @classmethod
    def _ordered(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and (v[0] > v[1] or v[0] < 1950):
            raise ValueError(f"must be [first, last] with 1950 <= first <= last, got {list(v)}")
        return v

    def to_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        """Plain nested dict; secrets in storage options replaced by ``'***'``."""
        data = self.model_dump(mode="json")
        if mask_secrets:
            data["store"]["storage_options"] = _mask(data["store"]["storage_options"])
            data["inputs"]["storage_options"] = _mask(data["inputs"]["storage_options"])
        return data

    def to_yaml(self) -> str:
        """The effective settings as YAML, secrets masked."""
        return yaml.safe_dump(self.to_dict(mask_secrets=True), sort_keys=False)


def _mask(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: ("***" if any(w in str(k).lower() for w in _SECRET_WORDS) else _mask(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_mask(v) for v in obj]
    return obj


def default_mapping() -> dict[str, Any]:
    """The packaged defaults as a nested dict."""
    text = resources.files("smci_dask").joinpath("defaults.yaml").read_text()
    return yaml.safe_load(text)


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p}: does not exist; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config file {p}{where}: not valid YAML ({problem}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: top level must be a mapping of sections (region:, store:, ...), got {type(data).__name__}")
    return data


def _env_mapping(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name}: conflicts with another SMCI__ variable setting {part!r} to a value")
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and v:
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _format_validation(exc: ValidationError, sources: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            parent = loc.rsplit(".", 1)[0] if "." in loc else ""
            msg = f"unknown key; known keys here: {_known_keys(parent)}"
        elif err["type"] in ("literal_error", "enum"):
            msg = f"{msg}, got {err.get('input')!r}"
        lines.append(f"{loc or '(top level)'}: {msg}")
    return f"invalid configuration ({sources}): " + "; ".join(lines)


def _known_keys(dotted: str) -> str:
    model: type[BaseModel] = Config
    for part in [p for p in dotted.split(".") if p]:
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None) if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return "(see defaults.yaml)"
    return ", ".join(model.model_fields)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Load and validate the effective configuration.

    Parameters
    ----------
    path
        User YAML file; when ``None``, ``$SMCI_CONFIG`` if set.
    overrides
        Nested dict applied last (CLI options).
    environ
        Environment to read ``SMCI__*`` variables from (default ``os.environ``).

    Raises
    ------
    ConfigError
        Naming the file or variable, the dotted key and the allowed values.
    """
    env = dict(os.environ if environ is None else environ)
    sources = ["defaults"]
    data = default_mapping()
    path = path or env.get(ENV_CONFIG_FILE) or None
    if path:
        data = _merge(data, _read_yaml(path))
        sources.append(f"file {path}")
    env_data = _env_mapping(env)
    if env_data:
        data = _merge(data, env_data)
        sources.append("SMCI__* environment variables")
    if overrides:
        data = _merge(data, overrides)
        sources.append("command-line options")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, ", ".join(sources))) from None
