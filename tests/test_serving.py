"""The files for serving the kit to a class agree with the kit: Binder's environment is the root's
without the editable install, its postBuild installs the kit, the hub config loads, and the Zero to
JupyterHub config parses. (Whether they work on a real hub is what tools/hub_trial.py and
docs/instructor.md report: these tests cannot start a hub.)"""

from __future__ import annotations

import os
import pathlib
import runpy

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def deps(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))["dependencies"]


def test_binders_environment_is_the_roots_without_the_kit():
    root, binder = deps(ROOT / "environment.yml"), deps(ROOT / "binder" / "environment.yml")
    assert [d for d in root if isinstance(d, str)] == binder
    assert {"pip": ["-e ."]} in root and all(isinstance(d, str) for d in binder)


def test_postbuild_installs_the_kit_and_its_lab_settings():
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK), "repo2docker runs binder/postBuild as a program: it must be executable"
    text = post.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    assert "pip install --no-deps --no-cache-dir -e ." in text
    assert "jupyterlab-overrides.json" in text and (ROOT / "jupyterlab-overrides.json").exists()


class _Config(dict):
    """Enough of traitlets' config object for a config file to assign to."""

    def __getattr__(self, name):
        return self.setdefault(name, _Config())

    def __setattr__(self, name, value):
        self[name] = value


def test_the_hub_config_lays_out_a_hub_and_a_user_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KSMLAB_HUB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("KSMLAB_USER_ENV", "/opt/ksmlab/user")
    monkeypatch.delenv("KSMLAB_HUB_TOKEN", raising=False)
    c = _Config()
    runpy.run_path(str(ROOT / "hub" / "jupyterhub_config.py"), init_globals={"get_config": lambda: c})
    assert c.Spawner.cmd == ["/opt/ksmlab/user/bin/jupyterhub-singleuser"]
    assert c.Spawner.default_url == "/lab/tree/ksmlab/notebooks"
    assert "--MappingKernelManager.cull_idle_timeout=1200" in c.Spawner.args
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'state'}/jupyterhub.sqlite"
    assert "services" not in c.JupyterHub, "no service token unless the trial passes one"
    assert (tmp_path / "state").is_dir()


def test_the_z2jh_config_sizes_a_seat_from_the_measurements():
    cfg = yaml.safe_load((ROOT / "hub" / "z2jh" / "config.yaml").read_text(encoding="utf-8"))
    mem = cfg["singleuser"]["memory"]
    mb = {k: int(v.rstrip("M")) for k, v in mem.items()}
    assert mb["guarantee"] < mb["limit"]
    assert mb["limit"] >= 1382, "the limit must hold a seat with all ten lessons open (up to 1382 MB RSS measured)"
    assert cfg["singleuser"]["defaultUrl"] == "/lab/tree/ksmlab/notebooks"
    dockerfile = (ROOT / "hub" / "z2jh" / "Dockerfile").read_text(encoding="utf-8")
    for name in ("pyproject.toml", "setup.py", "constraints.txt", "README.md", "LICENSE", "NOTICE"):
        assert name in dockerfile and (ROOT / name).exists(), name
