"""The trace's cheap records (ksmlab.trace): the ring keeps plain tuples, some with their text not
yet formatted; every read hands out the frozen Event with the text as a str."""

import dataclasses

from ksmlab import PAGE_SIZE, Machine
from ksmlab.trace import Event, Trace


def merged_machine():
    m = Machine(mode="upgrade")
    for name in ("a", "b"):
        p = m.spawn(name)
        addr = p.mmap(2)
        p.write(addr, b"same")
        p.write(addr + PAGE_SIZE, name.encode())
        p.madvise(addr, 2 * PAGE_SIZE, "MADV_MERGEABLE")
    m.ksmd.run(full_scans=2)
    return m


def test_every_read_gives_frozen_events_with_text():
    m = merged_machine()
    events = list(m.trace)
    assert events and all(type(e) is Event and type(e.what) is str for e in events)
    assert m.trace[0] == events[0] and m.trace[-1] == events[-1] and m.trace[2:5] == events[2:5]
    assert m.trace.since(events[3].seq) == events[3:]
    assert list(reversed(m.trace)) == events[::-1]
    # the text kept unformatted in the ring reads as the kernel's words, values filled in
    visits = [e for e in events if e.func == "ksm_do_scan" and e.what.startswith("visit")]
    assert visits and all(e.what == f"visit: page {e.pfn}, rmap_item in no tree" for e in visits[:4])
    checksums = [e.what for e in events if e.func == "calc_checksum"]
    assert checksums and checksums[0].startswith("checksum 0x") and "differs from 0x00000000" in checksums[0]
    assert any(e.what.startswith("pte now maps the KSM page ") for e in events)
    with_values = [r for r in m.trace._events if type(r[5]) is tuple]
    assert with_values, "the hot call sites keep (template, values) in the ring"


def test_records_are_still_frozen_and_compare_as_events():
    m = merged_machine()
    e = m.trace[5]
    try:
        e.func = "x"
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("Event is not frozen")
    assert dataclasses.astuple(e)[0] == e.seq and str(e).startswith(f"{e.seq:5d} ")


def test_append_of_an_event_and_record_of_fields_read_back_the_same():
    t = Trace(limit=3)
    t.append(Event(0, "f", "p", 0x1000, 7, "hello", "h1", "ksm.c.after:1"))
    t.record("g", None, None, 8, ("{} + {} = {}", 1, 1, 2), None, None, None)
    assert t[0] == Event(0, "f", "p", 0x1000, 7, "hello", "h1", "ksm.c.after:1")
    assert t[1] == Event(1, "g", None, None, 8, "1 + 1 = 2")
    for i in range(3):
        t.record("h", None, None, None, "x", None, None, None)
    assert len(t) == 3 and t.first_seq == 2 and [e.seq for e in t] == [2, 3, 4]
