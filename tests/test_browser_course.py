"""Lessons 06 and 07 in a real JupyterLab: Run All, then each mode's stepper control forward and back
(alone, then stepped together), each hunk switch, and playground changes, each checked against what
the lesson's printed twin computes.

Uses the JupyterLab fixture of tests/test_browser.py (skipped, with the reason, without Chromium or
playwright).
"""

from __future__ import annotations

import uuid

import pytest

from test_browser import VIEWPORT, _delete_sessions, _run_all, browser, jupyterlab  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _open_and_run(browser, base, token, notebook):  # noqa: F811
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(f"{base}/lab/workspaces/{uuid.uuid4().hex}/tree/{notebook}?reset&token={token}")
    page.wait_for_function("document.body.innerText.includes('Idle')", timeout=90_000)
    _run_all(page)
    return page


def _no_errors(page):
    page.wait_for_function("document.body.innerText.includes('Idle')", timeout=60_000)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                          ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.all_inner_texts()


def test_lesson_06_stepper_and_hunk_switches(jupyterlab, browser):  # noqa: F811
    from ksmlab import PAGE_SIZE
    from ksmlab.views.course_widgets import run_with_switches
    from ksmlab.views.course_widgets import matching_steps
    from ksmlab.views.stepper import changed_keys, record_merge
    from ksmlab.views.accounting import NOBODY

    def two_tenants(m):                  # the lesson's scenario
        m.add_cgroup("A"); m.add_cgroup("B")
        for name in "ab":
            p = m.spawn(name, cgroup=name.upper())
            addr = p.mmap(pages=1)
            p.write(addr, b"same page")
            p.madvise(addr, PAGE_SIZE, "MADV_MERGEABLE")
        m.ksmd.run(full_scans=1)
        return m

    recorded = {mode: record_merge(two_tenants, mode) for mode in ("allocate", "upgrade")}
    base, token = jupyterlab
    page = _open_and_run(browser, base, token, "06-the-patch-hunk-by-hunk.ipynb")
    if True:
        try:
            page.locator(".ksmlab-stepper[data-mode='upgrade']").first.wait_for(timeout=120_000)

            def column(mode):
                return page.locator(f".widget-output .ksmlab-stepper[data-mode='{mode}']")

            def box(mode):           # the mode's own controls and column
                return column(mode).locator("xpath=ancestor::div[contains(@class,'widget-vbox')][1]")

            def at(mode, step):
                page.wait_for_function(
                    "([m, s]) => document.querySelector(`.widget-output .ksmlab-stepper[data-mode='${m}']`)"
                    "?.dataset.step === s", arg=[mode, str(step)], timeout=30_000)

            def check_column(mode, step):
                """The column shows `step`'s event and highlights exactly the cells that step changed."""
                at(mode, step)
                snaps = recorded[mode]
                text = column(mode).inner_text()
                assert f"{mode}: step {step} of {len(snaps) - 1}" in text, text
                if step:
                    assert snaps[step].func in text, text
                keys = changed_keys(snaps[step - 1], snaps[step]) if step else set()
                want = sum(2 if k[0] in ("pte", "charge") else 1 for k in keys
                           if not (k[0] == "page" and k[2] == "mapping"))
                marked = column(mode).evaluate(
                    "el => [...el.querySelectorAll('td, span')].filter("
                    "e => getComputedStyle(e).backgroundColor === 'rgb(255, 243, 176)').length")
                assert marked == want, (mode, step, marked, keys)

            funcs = {m: [s.func for s in snaps] for m, snaps in recorded.items()}
            upgrade_at = funcs["upgrade"].index("set_page_stable_node")
            alloc_at = funcs["allocate"].index("alloc_page")
            for _ in range(upgrade_at):                       # the upgrade column alone, forward ...
                box("upgrade").locator("button:text-is('forward ▶')").click()
            check_column("upgrade", upgrade_at)
            check_column("allocate", 0)                       # ... the other column does not move
            box("upgrade").locator("button:text-is('◀ back')").click()      # ... and back
            check_column("upgrade", upgrade_at - 1)
            assert "set_page_stable_node" not in column("upgrade").inner_text()
            for _ in range(alloc_at):                         # the allocate column alone
                box("allocate").locator("button:text-is('forward ▶')").click()
            check_column("allocate", alloc_at)
            check_column("upgrade", upgrade_at - 1)
            box("allocate").locator("button:text-is('◀ back')").click()
            check_column("allocate", alloc_at - 1)

            # step together: ticking it aligns upgrade on allocate; each move then moves the other column
            page.locator(".widget-checkbox:has-text('step together') input").click()
            expected = matching_steps(recorded, "allocate", alloc_at - 1)
            check_column("upgrade", expected["upgrade"])
            for _ in range(3):
                box("allocate").locator("button:text-is('forward ▶')").click()
                expected = matching_steps(recorded, "allocate", expected["allocate"] + 1)
                check_column("allocate", expected["allocate"])
                check_column("upgrade", expected["upgrade"])
            box("upgrade").locator("button:text-is('forward ▶')").click()
            expected = matching_steps(recorded, "upgrade", expected["upgrade"] + 1)
            check_column("upgrade", expected["upgrade"])
            check_column("allocate", expected["allocate"])
            box("upgrade").locator("button:text-is('◀ back')").click()
            expected = matching_steps(recorded, "upgrade", expected["upgrade"] - 1)
            check_column("upgrade", expected["upgrade"])
            check_column("allocate", expected["allocate"])

            switches = page.locator(".widget-vbox:has(.widget-output .ksmlab-switches)").first
            result = switches.locator(".ksmlab-switches")
            for name in ("upgrade_in_place", "vm_locked_kpage_guard", "drop_lru_add_drain", "drop_put_page",
                         "access_once"):
                expected = run_with_switches(lambda m: two_tenants(m).ksmd.run(full_scans=1), {name: False})
                box = switches.locator(f".widget-checkbox:has-text('{name}') input")
                box.click()
                want = "oops" if expected["outcome"].startswith("oops") else "ran to the end"
                charged = [f"{k if k == NOBODY else 'charged to ' + k}\t{v}" for k, v in expected["charged"].items()]
                page.wait_for_function(
                    "([w, c]) => { const t = document.querySelector('.ksmlab-switches')?.innerText || '';"
                    " return t.includes(w) && c.every(x => t.includes(x)); }", arg=[want, charged], timeout=30_000)
                box.click()                  # back to all applied
                page.wait_for_function("(document.querySelector('.ksmlab-switches')?.innerText || '').includes('ran to the end')",
                                       timeout=30_000)
            assert "unsafe\tno" in result.inner_text(), result.inner_text()
            _no_errors(page)
        finally:
            page.context.close()
            _delete_sessions(base, token)


def test_lesson_07_playground(jupyterlab, browser):  # noqa: F811
    from ksmlab.views.accounting import who_pays
    from ksmlab.views.course_widgets import play

    base, token = jupyterlab
    page = _open_and_run(browser, base, token, "07-who-pays.ipynb")
    if True:
        try:
            ground = page.locator(".widget-vbox:has(.widget-output .ksmlab-playground)").first
            ground.wait_for(timeout=120_000)
            for mode, label in (("allocate", "before: allocate"), ("upgrade", "after: upgrade")):
                ground.locator(f".widget-toggle-buttons button:text-is('{label}')").click()
                nobody = who_pays(play(mode=mode)).loc["in use, charged to no cgroup", "charged"]
                page.wait_for_function(
                    "([m, n]) => { const t = document.querySelector('.ksmlab-playground')?.innerText || '';"
                    " return t.startsWith('who pays (' + m) && t.includes('in use, charged to no cgroup\\t0\\t' + n); }",
                    arg=[mode, str(nobody)], timeout=30_000)
            ground.locator(".widget-toggle-buttons button:text-is('reversed')").click()
            expected = who_pays(play(order="reversed")).loc["A", "charged"]
            assert expected == 4
            page.wait_for_function(
                "(document.querySelector('.ksmlab-playground')?.innerText || '').includes('A\\t4\\t4\\t4')", timeout=30_000)
            _no_errors(page)
        finally:
            page.context.close()
            _delete_sessions(base, token)
