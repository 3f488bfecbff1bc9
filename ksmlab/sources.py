"""The kernel sources that ksmlab cites, shipped with it, and a way to read a citation.

Every ``file:LINE`` or ``file:FIRST-LAST`` in ksmlab's docstrings, traces, notebooks and exercises
points into one of these files (``ksmlab/data/sources/``):

================================  ==========================================================================
``ksm.c.before``                  mm/ksm.c just before the commit (git blob 37cc92f8, as at 4035c07a)
``ksm.c.after``                   mm/ksm.c at commit 80e148226028 (git blob 20f46a7b)
``rmap.c.before``                 mm/rmap.c before the commit (git blob ebdf582e)
``rmap.c.after``                  mm/rmap.c at the commit (git blob 2e38e904)
``memory.c.5ad64688-excerpts.c``  mm/memory.c at 5ad6468801d2: do_wp_page, do_swap_page, do_anonymous_page,
                                  verbatim, with two banner comments that say so
``ksm.h.5ad64688``                include/linux/ksm.h at 5ad6468801d2
``ksm.c.6.12.117``                mm/ksm.c of Linux 6.12.117, cited as ``modern:LINE``
``2.6.32.70 mm/FILE``             the rest of mm/ of that era, Linux 2.6.32.70: ``mlock.c``, ``vmscan.c``,
``2.6.32.70 include/linux/FILE``  ``swap.c``, ``internal.h``, ``memcontrol.c``, ``oom_kill.c``, ``madvise.c``,
                                  ``memory.c``, ``mmap.c``; and the headers ``rmap.h``, ``mm_inline.h``,
                                  ``swap.h``, ``mm.h``, ``page-flags.h``, ``pagevec.h``, ``memcontrol.h``
================================  ==========================================================================

The 2.6.32.70 files (in ``linux-2.6.32.70/``) are verbatim from a public copy of that stable release.
They are *not* the commit's parent: 80e14822 was merged in the 2.6.33 merge window, and the 2.6.32
stable series carries later backports, so a line there can differ from what the commit's parent
had. They show what a function outside ksm.c and rmap.c did in this era; the citation says the
version, with a space before the path: ``2.6.32.70 mm/vmscan.c:520`` (``putback_lru_page``).

Lines 1-833 of ``ksm.c.before`` and ``ksm.c.after`` are identical; the diff is
``ksmlab/data/ksm-commit.diff``. In a notebook::

    from ksmlab.sources import show
    show("ksm.c.after:1196-1200")
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from .errors import KsmlabError

__all__ = ["FILES", "ALIASES", "OLD_RELEASE", "OLD_RELEASE_FILES", "path", "lines", "show", "Listing"]

SOURCES = Path(__file__).resolve().parent / "data" / "sources"

#: The shipped files, and where each comes from.
FILES = {
    "ksm.c.before": "mm/ksm.c just before commit 80e14822 (its parent's content, 4035c07a)",
    "ksm.c.after": "mm/ksm.c at commit 80e14822, 'ksm: share anon page without allocating'",
    "rmap.c.before": "mm/rmap.c just before commit 80e14822",
    "rmap.c.after": "mm/rmap.c at commit 80e14822",
    "memory.c.5ad64688-excerpts.c": "mm/memory.c at 5ad64688: do_wp_page, do_swap_page, do_anonymous_page",
    "ksm.h.5ad64688": "include/linux/ksm.h at 5ad64688",
    "ksm.c.6.12.117": "mm/ksm.c of Linux 6.12.117",
}

#: The Linux 2.6.32.70 files: not the commit's parent (see the module docstring).
OLD_RELEASE = "2.6.32.70"
OLD_RELEASE_FILES = ("mm/internal.h", "mm/madvise.c", "mm/memcontrol.c", "mm/memory.c", "mm/mlock.c",
                     "mm/mmap.c", "mm/oom_kill.c", "mm/swap.c", "mm/vmscan.c",
                     "include/linux/memcontrol.h", "include/linux/mm.h", "include/linux/mm_inline.h",
                     "include/linux/page-flags.h", "include/linux/pagevec.h", "include/linux/rmap.h",
                     "include/linux/swap.h")
for _file in OLD_RELEASE_FILES:
    FILES[f"{OLD_RELEASE} {_file}"] = (f"{_file} of Linux {OLD_RELEASE} (a 2.6.32 stable release, not the "
                                        "commit's parent: a line can differ from what 80e14822^ had)")
del _file

#: Short names used in citations.
ALIASES = {"modern": "ksm.c.6.12.117", "memory.c": "memory.c.5ad64688-excerpts.c"}

_CITATION = re.compile(r"^\s*(?P<file>(?:2\.6\.32\.70 +)?[\w.\-/]+):(?P<first>\d+)(?:-(?P<last>\d+))?\s*$")


def path(name: str) -> Path:
    """The shipped file ``name`` (a key of :data:`FILES` such as ``"ksm.c.after"`` or
    ``"2.6.32.70 mm/vmscan.c"``, or an alias such as ``"modern"``)."""
    name = _canonical(name)
    if name not in FILES:
        raise KsmlabError(f"no shipped source {name!r}; the sources are {', '.join(FILES)} "
                          f"(and the aliases {', '.join(ALIASES)})")
    if name.startswith(OLD_RELEASE + " "):
        return SOURCES.joinpath(f"linux-{OLD_RELEASE}", *name.split(" ", 1)[1].split("/"))
    return SOURCES / name


def _canonical(name: str) -> str:
    """An alias resolved, and ``2.6.32.70   mm/x.c`` written with one space."""
    name = ALIASES.get(name, name)
    if name.startswith(OLD_RELEASE + " "):
        name = f"{OLD_RELEASE} {name[len(OLD_RELEASE):].strip()}"
    return name


@lru_cache(maxsize=None)
def _text(name: str) -> tuple[str, ...]:
    return tuple(path(name).read_text(encoding="utf-8").split("\n"))


class Listing:
    """Numbered source lines; shown as text (``print`` or a notebook's output)."""

    __slots__ = ("citation", "numbered")

    def __init__(self, citation: str, numbered: list[tuple[int, str]]):
        self.citation = citation
        self.numbered = numbered

    @property
    def text(self) -> str:
        """The lines without their numbers."""
        return "\n".join(line for _, line in self.numbered)

    def __repr__(self) -> str:
        width = len(str(self.numbered[-1][0]))
        body = "\n".join(f"{n:>{width}}  {line.expandtabs(8)}" for n, line in self.numbered)
        return f"{self.citation}\n{body}"

    __str__ = __repr__


def lines(citation: str, context: int = 0) -> Listing:
    """The lines a citation such as ``"ksm.c.after:1196-1200"``, ``"modern:2252"`` or
    ``"2.6.32.70 mm/vmscan.c:520"`` points at, with ``context`` more lines on each side."""
    match = _CITATION.match(citation) if isinstance(citation, str) else None
    if match is None:
        raise KsmlabError(f"{citation!r} is not a citation: write FILE:LINE or FILE:FIRST-LAST, "
                          "e.g. 'ksm.c.after:1196-1200' or '2.6.32.70 mm/vmscan.c:520'")
    name = _canonical(match["file"])
    text = _text(name) if name in FILES else path(name)       # path() names the valid files
    first = int(match["first"])
    last = int(match["last"] or first)
    if not 1 <= first <= last <= len(text):
        raise KsmlabError(f"{citation!r}: {name} has lines 1-{len(text)}, and FIRST must not exceed LAST")
    lo = max(1, first - context)
    hi = min(len(text), last + context)
    return Listing(f"{name}:{first}" + (f"-{last}" if last != first else ""),
                   [(n, text[n - 1]) for n in range(lo, hi + 1)])


def show(citation: str, context: int = 0) -> Listing:
    """:func:`lines`, for a notebook cell: the listing is the cell's output."""
    return lines(citation, context)
