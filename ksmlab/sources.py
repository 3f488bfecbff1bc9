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

    from ksmlab.sources import show, reading
    reading(lesson=2)                 # optional: which lesson you are reading
    show("ksm.c.after:1196-1200")

Once :func:`reading` has said which lesson you read, :func:`show` prints a *key* under the lines: one
line for each name of the listing you have not met yet (what it is, and the glossary entry that says
more), from ``ksmlab/data/kernel-names.toml``. A name is explained once per session, and names the
prose of an earlier lesson defined are left out.
"""

from __future__ import annotations

import html
import re
import textwrap
import tomllib
from functools import lru_cache
from pathlib import Path

from .errors import KsmlabError

__all__ = ["FILES", "ALIASES", "OLD_RELEASE", "OLD_RELEASE_FILES", "path", "lines", "show", "Listing",
           "NAMES", "C_WORDS", "names_in", "reading", "Key"]

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
    """Numbered source lines; shown as text (``print``) or, in a notebook, as HTML with the same text.

    ``key`` (set by :func:`show`) is the :class:`Key` printed under the lines."""

    __slots__ = ("citation", "numbered", "key")

    def __init__(self, citation: str, numbered: list[tuple[int, str]], key: "Key | None" = None):
        self.citation = citation
        self.numbered = numbered
        self.key = key

    @property
    def text(self) -> str:
        """The lines without their numbers."""
        return "\n".join(line for _, line in self.numbered)

    def __repr__(self) -> str:
        width = len(str(self.numbered[-1][0]))
        body = "\n".join(f"{n:>{width}}  {line.expandtabs(8)}" for n, line in self.numbered)
        text = f"{self.citation}\n{body}"
        return f"{text}\n\n{self.key}" if self.key else text

    __str__ = __repr__

    def _repr_html_(self) -> str | None:
        """HTML only for a listing with a key (its links); without one, the text is the whole output."""
        if not self.key:
            return None
        width = len(str(self.numbered[-1][0]))
        body = "\n".join(f"{n:>{width}}  {line.expandtabs(8)}" for n, line in self.numbered)
        listing = (f'<pre class="ksmlab-listing" style="margin:0">{html.escape(self.citation)}\n'
                   f"{html.escape(body)}</pre>")
        return f"<div>{listing}{self.key._repr_html_()}</div>"


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


# ---------------------------------------------------------------- the key under a listing

#: Words of C itself (and of its preprocessor): a reader who knows C knows them, so no key explains them.
C_WORDS = frozenset("""auto break case char const continue default do double else enum extern float for goto if
    inline int long register return short signed sizeof static struct switch typedef union unsigned void
    volatile while bool true false NULL define ifdef ifndef endif elif undef include""".split())

NAMES_FILE = Path(__file__).resolve().parent / "data" / "kernel-names.toml"


def _load_names() -> dict[str, dict]:
    with NAMES_FILE.open("rb") as f:
        return tomllib.load(f)


#: Every name the lessons' listings show: ``{name: {"what"|"skip", "cite", "glossary", "lesson", "where"}}``
#: (``ksmlab/data/kernel-names.toml`` says what each field means).
NAMES: dict[str, dict] = _load_names()

_WORD = re.compile(r"[A-Za-z_]\w*")


def _code_and_comments(text: str) -> tuple[str, str]:
    """``text`` split into its code and its comments (a listing may start inside a comment)."""
    first_open, first_close = text.find("/*"), text.find("*/")
    in_comment = first_close != -1 and (first_open == -1 or first_close < first_open)
    code, comments, i = [], [], 0
    while i < len(text):
        if in_comment:
            end = text.find("*/", i)
            end = len(text) if end == -1 else end
            comments.append(text[i:end])
            i, in_comment = end + 2, False
        else:
            start = text.find("/*", i)
            line = text.find("//", i)
            if line != -1 and (start == -1 or line < start):
                eol = text.find("\n", line)
                eol = len(text) if eol == -1 else eol
                code.append(text[i:line])
                comments.append(text[line:eol])
                i = eol
                continue
            start = len(text) if start == -1 else start
            code.append(text[i:start])
            i, in_comment = start + 2, True
    return " ".join(code), " ".join(comments)


def _looks_like_a_name(word: str) -> bool:
    """In a comment: a word that is an identifier rather than English (``rmap_list``, ``O_DIRECT``,
    ``PageKsm``, ``GPL``), or one the names file marks as meant in comments too (``inode``). A plain
    word the file knows as code (the label ``up``) is English in a comment ("setting up")."""
    return ("_" in word.strip("_") or (len(word) > 1 and word.isupper()) or any(c.isupper() for c in word[1:])
            or NAMES.get(word, {}).get("in_comments", False))


def names_in(text: str) -> list[str]:
    """The names a reader meets in source ``text``, in order of first appearance: every identifier of
    the code that is not a word of C (:data:`C_WORDS`), and the identifiers that comments mention."""
    code, comments = _code_and_comments(text)
    found = {m.group() for m in _WORD.finditer(code) if m.group() not in C_WORDS}
    found |= {m.group() for m in _WORD.finditer(comments) if _looks_like_a_name(m.group())}
    first = {name: re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text).start() for name in found}
    return sorted(found, key=lambda name: (first[name], name))


_READING: dict = {"lesson": None, "keyed": {}}


def reading(lesson: int | None) -> None:
    """Say which lesson of the course you are reading (1-10; ``None``: none). Keys under later
    listings then leave out the names that earlier lessons' prose defined, and start afresh."""
    if lesson is not None and (isinstance(lesson, bool) or not isinstance(lesson, int) or not 1 <= lesson <= 10):
        raise KsmlabError(f"reading(lesson={lesson!r}): give the lesson's number, 1 to 10 (or None)")
    _READING["lesson"] = lesson
    _READING["keyed"] = {}


def _glossary_anchor(heading: str) -> str:
    """The anchor GitHub gives a ``## heading`` of glossary.md."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


class Key:
    """The names of one listing, explained: ``entries`` are ``(name, entry)`` in listing order."""

    __slots__ = ("entries",)

    def __init__(self, entries: list[tuple[str, dict]]):
        self.entries = entries

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __repr__(self) -> str:
        width = min(24, max(len(name) for name, _ in self.entries))
        out = ["names in this listing:"]
        for name, entry in self.entries:
            text = entry.get("what") or f"you can skip it: {entry['skip']}"
            if entry.get("glossary"):
                text += f" [glossary: {entry['glossary']}]"
            head = f"  {name:<{width}}  "
            if len(head) > width + 4:                  # a long name: its text on the next line
                out.append(head.rstrip())
                head = " " * (width + 4)
            out.extend(textwrap.wrap(text, 100, initial_indent=head, subsequent_indent=" " * (width + 4),
                                     break_on_hyphens=False))
        return "\n".join(out)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        cell = "text-align:left;vertical-align:top;padding:1px 8px 1px 0;border:none;background:none"
        rows = []
        for name, entry in self.entries:
            text = html.escape(entry.get("what") or f"you can skip it: {entry['skip']}")
            text = re.sub(r"`([^`]+)`", r'<code style="white-space:nowrap">\1</code>', text)
            if entry.get("glossary"):
                heading = entry["glossary"]
                text += (f' <a href="glossary.md#{_glossary_anchor(heading)}">glossary: '
                         f"{html.escape(heading.replace('`', ''))}</a>")
            rows.append(f'<tr><td style="{cell};white-space:nowrap"><code>{html.escape(name)}</code></td>'
                        f'<td style="{cell}">{text}</td></tr>')
        return ('<details open class="ksmlab-key" style="margin:0.3em 0 0 0">'
                f'<summary style="cursor:pointer">names in this listing ({len(self.entries)})</summary>'
                '<table style="margin:0;font-size:90%;line-height:1.3;border-collapse:collapse">'
                f"<tbody>{''.join(rows)}</tbody></table></details>")


def key_for(listing: Listing, lesson: int | None = None, keyed: dict | None = None) -> Key:
    """The key of ``listing`` for a reader of ``lesson``: its names that the names file explains,
    less those an earlier lesson's prose defined and those already in ``keyed`` (name -> the
    citation whose key explained it; a listing shown again explains them again)."""
    keyed = {} if keyed is None else keyed
    entries = []
    for name in names_in(listing.text):
        entry = NAMES.get(name)
        if entry is None:
            continue
        known_from = entry.get("lesson")
        if known_from is not None and (lesson is None or known_from < lesson):
            continue
        if keyed.setdefault(name, listing.citation) != listing.citation:
            continue
        entries.append((name, entry))
    return Key(entries)


def show(citation: str, context: int = 0, key: bool | None = None) -> Listing:
    """:func:`lines`, for a notebook cell: the listing is the cell's output, with the key of the names
    in it that you have not met yet. The key is there once :func:`reading` has said which lesson you
    read (``key=True``: always; ``key=False``: never)."""
    listing = lines(citation, context)
    if key or (key is None and _READING["lesson"] is not None):
        listing.key = key_for(listing, _READING["lesson"], _READING["keyed"]) or None
    return listing
