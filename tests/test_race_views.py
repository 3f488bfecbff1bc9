"""The race lesson's views: the stepper is a thin view over witness_step, whose text the next cell prints."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from ksmlab import race  # noqa: E402
from ksmlab.views.race import (draw_schedule, outcome_frame, paths_frame, witness_step,  # noqa: E402
                               witness_stepper)


def test_the_stepper_shows_what_witness_step_returns():
    view = witness_stepper("reclaim", access_once=False, outcome="oops_0x2", step=4)
    assert repr(view.result) == repr(witness_step("reclaim", access_once=False, outcome="oops_0x2", step=4))
    assert "step 4 of 7" in view.fallback_text() and "R5 page_lock_anon_vma" in view.fallback_html()
    view.controls["step"].value = 7
    assert "spin_lock(0x2)" in repr(view.result) and "▸  7" in repr(view.result)


def test_choosing_another_outcome_resizes_the_slider():
    view = witness_stepper("reclaim", access_once=False, outcome="oops_0x2", step=7)
    view.controls["outcome"].value = "stable_node_corrupted"
    assert view.controls["step"].max == 12 and view.controls["step"].value == 7
    assert "step 7 of 12" in repr(view.result)
    view.controls["step"].value = 12
    assert "stable_node->page = corrupted" in repr(view.result)
    view.controls["outcome"].value = "oops_0x2"          # back to a shorter witness: the step is clamped
    assert view.controls["step"].value == 7 and "step 7 of 7" in repr(view.result)
    keys = [key for _, key in view.controls["outcome"].options]
    assert keys == [o.key for o in race.explore("reclaim", access_once=False).reached()]


def test_step_zero_is_the_initial_state_and_past_the_end_is_the_end():
    assert "Before the first step" in repr(witness_step(outcome="oops_0x2", step=0))
    assert witness_step(outcome="oops_0x2", step=99).step == 7


def test_tables_and_picture():
    frame = outcome_frame("reclaim")
    assert frame.loc["all schedules"].tolist() == ["", 244, 89]
    assert list(paths_frame("reclaim", access_once=True).index) == ["K1", "K2", "K3", "K4", "K5", "K6", "K7", "K8",
                                                                     "R1", "R2", "R3", "R4", "R5", "R7"]
    assert "M1" not in paths_frame("swapin", mapper_locks=False).index
    run = race.explore("swapin_after_zap", mapper_locks=False).witness("downgraded")
    assert run.records[run.bad_at - 1].step.id == "M5"
    fig = draw_schedule(run)
    red = [p for p in fig.axes[0].patches if p.get_facecolor()[:3] != (1.0, 1.0, 1.0) and p.get_height() < 0.7]
    assert len(red) == 1
