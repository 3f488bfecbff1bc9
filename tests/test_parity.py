"""The engine against the kernel's recorded observations (ksmlab/data/observations/*.json).

Runs on every machine: the kernel side is the stored record of ``python -m ksmlab real --record``.
"""

import platform

import pytest

from ksmlab import scenarios as sc
from ksmlab.scenarios import SCENARIOS, canonical, engine_for_parity, load_observations

OBSERVATIONS = load_observations()


def _engine_missing() -> str | None:
    """Why the engine cannot be imported yet, or None. Only a missing module counts; any other error
    inside the engine fails the tests."""
    try:
        import ksmlab.machine  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name in ("ksmlab.machine", "ksmlab"):
            return f"the engine ksmlab.machine is not written yet ({e})"
        raise
    return None


def test_observations_are_recorded():
    assert OBSERVATIONS, "no ksmlab/data/observations/linux-*.json; run: sudo python -m ksmlab real --record"


@pytest.mark.parametrize("obs", OBSERVATIONS, ids=[o["kernel"] for o in OBSERVATIONS])
def test_observations_cover_the_parity_regime(obs):
    assert set(obs["scenarios"]) == set(SCENARIOS), "re-record: the scenario list changed"
    assert obs["knobs"]["smart_scan"] == 0 and obs["knobs"]["use_zero_pages"] == 0
    assert obs["knobs"]["max_page_sharing"] == 256 and obs["knobs"]["merge_across_nodes"] == 1
    assert obs["date"] and obs["kernel"]
    for name, entry in obs["scenarios"].items():
        records = entry["records"]
        assert records[-1]["step"] == "end" and "null" in records[-1]["memcg"], name
        assert records[-1]["frames"], f"{name}: no per-page owner map recorded"
        assert all(set(r) == {"step", *sc.COUNTERS} for r in records[:-1]), name
        assert entry["summary"] == sc.summary(SCENARIOS[name]), f"{name}: re-record, the docstring changed"


def test_scenarios_have_one_line_docstrings():
    assert len(SCENARIOS) >= 15
    for name, fn in SCENARIOS.items():
        assert fn.__doc__ and "\n" not in fn.__doc__.strip(), name


@pytest.mark.parametrize(
    "obs,name",
    [(o, n) for o in OBSERVATIONS for n in SCENARIOS],
    ids=[f"{o['kernel']}-{n}" for o in OBSERVATIONS for n in SCENARIOS],
)
def test_engine_matches_the_kernel(obs, name):
    """Equal counters after every full scan, equal frames per cgroup and the same per-page owner map
    at the end."""
    missing = _engine_missing()
    if missing:
        pytest.skip(missing)
    recorded = obs["scenarios"][name]["records"]
    predicted = canonical(SCENARIOS[name](engine_for_parity(obs["kernel"])))
    assert predicted == recorded


def test_cli_compares_and_sets_the_exit_status(monkeypatch, capsys):
    from ksmlab import __main__ as cli

    if not OBSERVATIONS:
        pytest.skip("no recorded observations")
    monkeypatch.setattr(platform, "release", lambda: OBSERVATIONS[-1]["kernel"])
    recorded = OBSERVATIONS[-1]["scenarios"]["late_joiner"]["records"]
    monkeypatch.setattr(cli, "engine_side", lambda name, kernel: (recorded, "stub engine"))
    assert cli.main(["real", "--recorded", "late_joiner"]) == 0
    assert "AGREE" in capsys.readouterr().out
    wrong = [dict(r) for r in recorded]
    wrong[2]["pages_sharing"] += 1
    monkeypatch.setattr(cli, "engine_side", lambda name, kernel: (wrong, "stub engine"))
    assert cli.main(["real", "--recorded", "late_joiner"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT" in out and "DO NOT AGREE" in out
    assert cli.main(["real", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in SCENARIOS)


def test_page_size_is_the_engines():
    import ksmlab

    assert sc.PAGE_SIZE == ksmlab.PAGE_SIZE
