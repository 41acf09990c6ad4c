"""Configuration sources and precedence: defaults < YAML < VECDB_* env < flags."""
from __future__ import annotations

import pytest

from vecdb_server.config import ConfigError, ServerConfig, load_config


def test_defaults_are_embedded_and_local():
    cfg = load_config([], environ={})
    assert (cfg.host, cfg.port, cfg.data_dir, cfg.server_mode) == ("127.0.0.1", 50051, "./data",
                                                                   "threaded")
    assert cfg == ServerConfig()


def test_precedence_flags_over_env_over_yaml(tmp_path):
    path = tmp_path / "vecdb.yaml"
    path.write_text("port: 1111\nhost: 0.0.0.0\ndata_dir: /from/yaml\ndurability: async\n"
                    "grace_period_s: 3\nbackground: false\n")
    env = {"VECDB_PORT": "2222", "VECDB_DATA_DIR": "/from/env", "VECDB_MAX_WORKERS": "4"}
    cfg = load_config(["--config", str(path), "--port", "3333"], environ=env)
    assert cfg.port == 3333 and cfg.data_dir == "/from/env" and cfg.host == "0.0.0.0"
    assert cfg.max_workers == 4 and cfg.grace_period_s == 3.0
    assert cfg.engine.durability == "async" and cfg.engine.background is False


def test_config_path_from_env(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("log_level: DEBUG\n")
    assert load_config([], environ={"VECDB_CONFIG": str(path)}).log_level == "DEBUG"


@pytest.mark.parametrize("argv, env, yaml_text, needle", [
    (["--port", "abc"], {}, None, "port"),
    (["--port", "70000"], {}, None, "port"),
    ([], {"VECDB_BACKGROUND": "maybe"}, None, "background"),
    ([], {"VECDB_DURABILITY": "never"}, None, "durability"),
    (["--server-mode", "fibers"], {}, None, "server_mode"),
    (["--max-workers", "0"], {}, None, "max_workers"),
    ([], {}, "nope: 1\n", "nope"),
    ([], {}, "- a list\n", "mapping"),
    ([], {}, "port: [1, 2]\n", "port"),
    ([], {}, "port: {\n", "YAML"),
])
def test_bad_settings_name_the_key(tmp_path, argv, env, yaml_text, needle):
    if yaml_text is not None:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml_text)
        argv = [*argv, "--config", str(path)]
    with pytest.raises(ConfigError) as ei:
        load_config(argv, environ=env)
    assert needle in str(ei.value)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(["--config", str(tmp_path / "absent.yaml")], environ={})
