"""The commit's nine hunks, and the switches that turn its behavioural changes on one at a time.

``ksm-commit.diff`` (shipped as package data) has seven hunks in mm/ksm.c and two in mm/rmap.c,
``h1`` .. ``h9`` in diff order. ``h1``, ``h3`` and ``h9`` change only comments and ``h4`` only
declarations; the others change behaviour, and each behavioural change is a switch, ``True``
meaning "as after the commit":

=========================  =======  ===========================================================
switch                     hunks    what it does
=========================  =======  ===========================================================
``upgrade_in_place``       h2 h5 h6 upgrade the scanned page to a KSM page instead of allocating one
``vm_locked_kpage_guard``  h2       ``kpage &&`` in the VM_LOCKED test of try_to_merge_one_page
``drop_lru_add_drain``     h2       no ``lru_add_drain()`` before ``mlock_vma_page(kpage)``
``drop_put_page``          h7       no ``put_page(kpage)`` at the end of cmp_and_merge_page
``access_once``            h8       ``ACCESS_ONCE(page->mapping)`` in page_lock_anon_vma
=========================  =======  ===========================================================

``access_once`` changes nothing a sequential :class:`~ksmlab.Machine` can show: nothing runs between
the two loads it allows (:data:`ksmlab.rmap.PAGE_LOCK_ANON_VMA_LOADS`). ``ksmlab.race.explore("reclaim",
machine=m)`` runs that machine's compilation against ksmd's upgrade, every interleaving.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from .errors import KsmlabError

__all__ = ["SWITCHES", "MODES", "Hunk", "hunks", "diff_text", "resolve_switches", "unsafe_reasons",
           "safe_combinations"]

SWITCHES: dict[str, tuple[str, ...]] = {
    "upgrade_in_place": ("h2", "h5", "h6"),
    "vm_locked_kpage_guard": ("h2",),
    "drop_lru_add_drain": ("h2",),
    "drop_put_page": ("h7",),
    "access_once": ("h8",),
}

MODES = ("allocate", "upgrade")

_KINDS = {"h1": "comment", "h3": "comment", "h9": "comment", "h4": "declarations"}


@dataclass(frozen=True)
class Hunk:
    id: str
    file: str
    header: str
    text: str
    kind: str                      # "comment", "declarations" or "behaviour"
    switches: tuple[str, ...]


def diff_text() -> str:
    """The commit's diff (``ksm-commit.diff``, GPL-2.0 kernel code), as shipped in ksmlab/data."""
    return resources.files("ksmlab").joinpath("data/ksm-commit.diff").read_text()


def hunks() -> list[Hunk]:
    """The nine hunks of the diff in order, each with its id, file, text and switches."""
    result = []
    file = cur_file = None
    current: list[str] | None = None
    header = ""
    for line in diff_text().splitlines():
        if line.startswith("diff --git"):
            file = line.split(" b/")[-1]
            continue
        if line.startswith("@@"):
            if current is not None:
                result.append((cur_file, header, current))
            cur_file, header, current = file, line, [line]
            continue
        if current is not None and not line.startswith(("index ", "--- ", "+++ ")):
            current.append(line)
    if current is not None:
        result.append((cur_file, header, current))
    out = []
    for n, (f, h, lines) in enumerate(result, 1):
        hid = f"h{n}"
        sw = tuple(name for name, ids in SWITCHES.items() if hid in ids)
        out.append(Hunk(hid, f, h, "\n".join(lines), _KINDS.get(hid, "behaviour"), sw))
    return out


def resolve_switches(mode: str, overrides: dict | None) -> dict[str, bool]:
    """The switch settings for ``mode`` with ``overrides`` applied; bad names or values raise."""
    if mode not in MODES:
        raise KsmlabError(f"unknown mode {mode!r}: use 'upgrade' (after the commit) or 'allocate' (before it)")
    value = mode == "upgrade"
    switches = {name: value for name in SWITCHES}
    for name, setting in (overrides or {}).items():
        if name not in SWITCHES:
            raise KsmlabError(f"unknown hunk switch {name!r}: the switches are {', '.join(SWITCHES)}")
        if not isinstance(setting, bool):
            raise KsmlabError(f"hunk switch {name} must be True (as after the commit) or False, not {setting!r}")
        switches[name] = setting
    return switches


def unsafe_reasons(switches: dict[str, bool]) -> list[str]:
    """Why a combination of switches is one the kernel could not run safely (empty: it is safe).

    Leaving out the old ``lru_add_drain()`` (``drop_lru_add_drain`` in allocate mode) is not among
    them: the fresh kpage is then still in ksmd's pagevec when ``mlock_vma_page`` cannot isolate it,
    so it reaches an evictable list mlocked, and vmscan would cull it to the unevictable list later
    (2.6.32.70 mm/mlock.c:79-90, mm/vmscan.c:780). The kernel runs on; so does ksmlab, and its trace
    says so. Safe runs reach that state too, briefly (a page faulted into a pagevec and mlocked
    before it drains).
    """
    reasons = []
    if switches["upgrade_in_place"]:
        if not switches["drop_put_page"]:
            reasons.append("the old put_page(kpage) under-counts the upgraded page: it is freed while mapped")
        if not switches["vm_locked_kpage_guard"]:
            reasons.append("without 'kpage &&' a VM_LOCKED merge dereferences the NULL kpage")
    else:
        if switches["drop_put_page"]:
            reasons.append("without put_page(kpage) every allocated kpage keeps an extra reference and leaks")
    return reasons


def safe_combinations() -> list[dict[str, bool]]:
    """Every setting of the five switches that :func:`unsafe_reasons` finds safe."""
    import itertools
    combos = []
    for values in itertools.product((False, True), repeat=len(SWITCHES)):
        switches = dict(zip(SWITCHES, values))
        if not unsafe_reasons(switches):
            combos.append(switches)
    return combos
