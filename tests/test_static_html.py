"""A stored lesson exported to static HTML (nbconvert) shows each widget's numbers, without JavaScript.

The stored notebooks keep no widget state, so nbconvert (and GitHub's viewer, which renders the same
way) shows the static fallback that ksmlab/views/widgets.py puts beside each widget view. This test
exports every lesson, reads the page's text as a browser without JavaScript would, and checks that
each fallback is there, carries numbers, and that they are the numbers its printed twin (the later
cell that calls the widget's function and prints it) shows for the same choice.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

nbconvert = pytest.importorskip("nbconvert")
import nbformat  # noqa: E402

from test_browser import figures, headings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"


class _Fallbacks(HTMLParser):
    """The visible text of each ``<div class="ksmlab-fallback">`` (cells joined by tabs, rows by lines)."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._depth = 0
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if self._depth:
            self._depth += tag == "div"
            if tag in ("tr", "p"):
                self._text.append("\n")
            elif tag in ("td", "th"):
                self._text.append("\t")
        elif tag == "div" and "ksmlab-fallback" in (dict(attrs).get("class") or ""):
            self._depth, self._text = 1, []

    def handle_endtag(self, tag):
        if self._depth and tag == "div":
            self._depth -= 1
            if not self._depth:
                lines = ["".join(line).strip("\t ") for line in "".join(self._text).split("\n")]
                self.found.append("\n".join(line for line in lines if line))

    def handle_data(self, data):
        if self._depth:
            self._text.append(data)


def _widget_outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.get("output_type") in ("display_data", "execute_result") and WIDGET in o.get("data", {})]


def _twins(nb) -> list[str]:
    texts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            text = o.get("text") if o.get("output_type") == "stream" else o.get("data", {}).get("text/plain")
            if isinstance(text, str) and headings(text) and WIDGET not in o.get("data", {}):
                texts.append(text)
    return texts


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_static_html_shows_every_widgets_numbers(path):
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata, "stored widget state would hide the fallbacks from nbconvert and GitHub"
    html, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert "VBox(" not in html and "Error displaying widget" not in html
    outputs = _widget_outputs(nb)
    parser = _Fallbacks()
    parser.feed(html)
    assert len(parser.found) == len(outputs), f"{path.name}: {len(outputs)} widgets, {len(parser.found)} fallbacks shown"
    twins = _twins(nb)
    for shown in parser.found:
        assert figures(shown), f"{path.name}: a fallback without numbers: {shown[:300]}"
        matches = [t for t in twins if headings(t) == headings(shown)]
        if headings(shown):
            assert matches, f"{path.name}: no printed twin for the fallback {headings(shown)}"
        for twin in matches:
            assert figures(twin) == figures(shown), f"{path.name}: fallback {figures(shown)} vs twin {figures(twin)}"


def test_the_check_sees_a_missing_fallback(tmp_path):
    """The test itself can fail: strip the fallback from a widget output and no fallback is found."""
    with_widgets = [p for p in LESSONS if _widget_outputs(nbformat.read(p, as_version=4))]
    if not with_widgets:
        pytest.skip("no stored lesson has a widget")
    nb = nbformat.read(with_widgets[0], as_version=4)
    for output in _widget_outputs(nb):
        del output["data"]["text/html"]
    html, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    parser = _Fallbacks()
    parser.feed(html)
    assert parser.found == []
