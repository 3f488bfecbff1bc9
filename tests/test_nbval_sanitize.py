"""tests/nbval-sanitize.cfg: read exactly as nbval reads it, then applied to real outputs."""

import re
from pathlib import Path

import pandas as pd
import pytest
from nbval.plugin import get_sanitize_patterns

CFG = Path(__file__).resolve().parent / "nbval-sanitize.cfg"


@pytest.fixture(scope="module")
def patterns():
    pairs = get_sanitize_patterns(CFG.read_text(encoding="utf-8"))
    assert len(pairs) == 3, f"nbval reads {len(pairs)} patterns from {CFG.name}, expected 3"
    for regex, replace in pairs:
        assert regex == regex.strip() and replace == replace.strip(), "trailing blanks become part of the pattern"
        re.compile(regex)
    return pairs


def sanitize(patterns, text):
    for regex, replace in patterns:  # same loop as nbval's IPyNbCell.sanitize
        text = re.sub(regex, replace, text)
    return text


def test_object_addresses_are_replaced(patterns):
    a = sanitize(patterns, "[<matplotlib.lines.Line2D at 0x7f3a2b1c9d50>]")
    b = sanitize(patterns, "[<matplotlib.lines.Line2D at 0x7fe001234560>]")
    assert a == b == "[<matplotlib.lines.Line2D at 0xADDRESS>]"
    assert "0x7f" not in sanitize(patterns, repr(object()))


def test_simulated_addresses_are_kept(patterns):
    # Addresses inside the simulated machine are data: they must still be compared.
    line = "mmap -> 0x7f0000000000; page 3 at 0x7f0000003000 (pfn 0x1a2b)"
    assert sanitize(patterns, line) == line


def test_styler_ids_and_repr_are_replaced(patterns):
    df = pd.DataFrame({"pages_shared": [1, 2]})
    html_1 = df.style.highlight_max().to_html()
    html_2 = df.style.highlight_max().to_html()
    assert re.search(r"T_[0-9a-f]{5}", html_1), "pandas no longer uses T_xxxxx ids: revisit the pattern"
    assert html_1 != html_2, "Styler ids were expected to be random"
    assert sanitize(patterns, html_1) == sanitize(patterns, html_2)
    styler = df.style
    assert sanitize(patterns, repr(styler)) == sanitize(patterns, repr(df.style))


def test_fallback_pictures_are_masked_but_their_numbers_kept(patterns):
    html = '<p>B 3</p><img alt="x" src="data:image/png;base64,iVBORw0KGgo+/AAA="/><td>pages_shared 4</td>'
    out = sanitize(patterns, html)
    assert "iVBOR" not in out and "data:image/png;base64,PNG" in out
    assert "B 3" in out and "pages_shared 4" in out
