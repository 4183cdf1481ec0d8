"""Configuration: defaults, user YAML, environment, validation messages, secrets."""

from __future__ import annotations

import pytest
import yaml

from smci_dask.config import Config, default_mapping, load_config
from smci_dask.errors import ConfigError


def test_defaults_validate_and_cover_every_section():
    cfg = load_config(environ={})
    assert isinstance(cfg, Config)
    # the packaged YAML and the models agree key by key (no silent default drift)
    assert set(default_mapping()) == set(Config.model_fields)
    assert cfg.cluster.kind == "local"
    assert cfg.inference.tile_size == 512
    assert cfg.matching.layers[10] == 2 and cfg.matching.layers[100] == 3


def test_user_file_then_env_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"cluster": {"local": {"n_workers": 3}}, "inference": {"tile_size": 256}}))
    env = {"SMCI__INFERENCE__TILE_SIZE": "128", "SMCI__STORE__ROOT": "s3://bucket/x"}
    cfg = load_config(f, environ=env, overrides={"store": {"root": "/data"}})
    assert cfg.cluster.local.n_workers == 3  # from the file
    assert cfg.cluster.local.threads_per_worker == 1  # default kept beside it
    assert cfg.inference.tile_size == 128  # env beats file
    assert cfg.store.root == "/data"  # overrides beat env


def test_config_file_from_env_variable(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("years: [2012, 2014]\n")
    assert load_config(environ={"SMCI_CONFIG": str(f)}).years == (2012, 2014)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"cluster": {"kind": "slurmm"}}, "cluster.kind: Input should be 'local', 'address', 'slurm', 'pbs' or 'kubernetes', got 'slurmm'"),
        ({"cluster": {"kindd": "slurm"}}, "cluster.kindd: unknown key; known keys here: kind, local"),
        ({"inference": {"interpolation": "cubic"}}, "inference.interpolation: Input should be 'nearest' or 'bilinear'"),
        ({"model": {"members": ["lightgbm", "catboost"]}}, "model.members.1: Input should be 'lightgbm', 'xgboost' or 'sklearn'"),
        ({"cluster": {"kind": "address"}}, "cluster.address is not set"),
        ({"region": {"name": "custom"}}, "region.bbox is not set"),
        ({"region": {"name": "custom", "bbox": [120, 30, 110, 40]}}, "west < east"),
        ({"years": [2020, 2010]}, "years: Value error, must be [first, last]"),
        ({"matching": {"layers": {15: 2}}}, "depths [15] are not product depths"),
        ({"inference": {"tile_size": 2}}, "inference.tile_size: Input should be greater than or equal to 8"),
    ],
)
def test_invalid_values_name_key_and_allowed_values(overrides, expected):
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides=overrides)
    assert expected in str(info.value)


def test_env_variable_errors_name_their_source():
    with pytest.raises(ConfigError, match=r"SMCI__\* environment variables.*cluster.local.n_workers"):
        load_config(environ={"SMCI__CLUSTER__LOCAL__N_WORKERS": "0"})


def test_bad_yaml_names_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("cluster:\n  kind: local\n   n_workers: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml line \d+ column \d+: not valid YAML"):
        load_config(f, environ={})


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", environ={})
    f = tmp_path / "list.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(f, environ={})


def test_secrets_never_printed():
    env = {"SMCI__STORE__STORAGE_OPTIONS__KEY": "AKIAEXAMPLE", "SMCI__STORE__STORAGE_OPTIONS__SECRET": "s3cr3t-value"}
    cfg = load_config(
        environ=env,
        overrides={"store": {"storage_options": {"client_kwargs": {"aws_session_token": "tok-123"}, "endpoint_url": "http://x"}}},
    )
    text = cfg.to_yaml()
    for secret in ("AKIAEXAMPLE", "s3cr3t-value", "tok-123"):
        assert secret not in text
    assert "http://x" in text  # non-secret options stay visible
    # the real values are still there for the code that needs them
    assert cfg.store.storage_options["secret"] == "s3cr3t-value"


def test_unknown_region_names_the_known_ones():
    from smci_dask.grid import get_region

    with pytest.raises(ConfigError, match="unknown region 'atlantis'; known regions: tiny, small, medium, china"):
        get_region("atlantis")
    with pytest.raises(ConfigError, match="region.name: Input should be 'tiny', 'small', 'medium', 'china' or 'custom'"):
        load_config(environ={}, overrides={"region": {"name": "atlantis"}})
