"""Lessons 06 and 07 in a real JupyterLab: Run All, then the stepper forward and back, each hunk
switch, and playground changes, each checked against what the lesson's printed twin computes.

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
    from ksmlab.views.stepper import record_merge
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

    upgrade = record_merge(two_tenants, "upgrade")
    base, token = jupyterlab
    page = _open_and_run(browser, base, token, "06-the-patch-hunk-by-hunk.ipynb")
    if True:
        try:
            stepper = page.locator(".widget-vbox:has(.widget-output .ksmlab-stepper)").first
            stepper.wait_for(timeout=120_000)
            view = stepper.locator(".ksmlab-stepper")
            forward = stepper.locator("button:text-is('forward ▶')")
            back = stepper.locator("button:text-is('◀ back')")
            for _ in range(5):
                forward.click()
            page.wait_for_function("document.querySelector('.ksmlab-stepper')?.dataset.step === '5'", timeout=30_000)
            text = view.inner_text()
            assert upgrade[5].func == "set_page_stable_node" and "set_page_stable_node" in text, text
            back.click()
            page.wait_for_function("document.querySelector('.ksmlab-stepper')?.dataset.step === '4'", timeout=30_000)
            assert "set_page_stable_node" not in view.inner_text()

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
