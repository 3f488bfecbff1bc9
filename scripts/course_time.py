"""Execute every lesson of the series as a student's Run All would, and print how long it took.

`make course-time` runs this. Each notebook runs in its own fresh kernel (nbclient, outputs thrown
away, nothing written back); the script polls the kernel process and reports, per notebook and in
total, the wall time, the kernel's CPU time and its peak resident memory: the figures an instructor
needs to size a JupyterHub seat (docs/instructor.md). It never touches the host's KSM: the lessons'
live parts are opt-in.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def _watch(pid_box: dict, stats: dict, stop: threading.Event) -> None:
    while not stop.is_set():
        pid = pid_box.get("pid")
        if pid:
            try:
                proc = psutil.Process(pid)
                stats["rss"] = max(stats.get("rss", 0), proc.memory_info().rss)
                times = proc.cpu_times()
                stats["cpu"] = times.user + times.system
            except psutil.Error:
                pass
        stop.wait(0.05)


def run(path: Path, timeout: int) -> dict:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    stats: dict = {}
    pid_box: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(pid_box, stats, stop), daemon=True)
    start = time.perf_counter()
    with client.setup_kernel():
        pid_box["pid"] = client.km.provisioner.pid if client.km.provisioner else None
        watcher.start()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        stop.set()
        watcher.join()
    return {"wall": time.perf_counter() - start, "cpu": stats.get("cpu", 0.0), "rss": stats.get("rss", 0)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="default: notebooks/*.ipynb")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    total = time.perf_counter()
    peak = 0
    cpu = 0.0
    print(f"{'notebook':<50} {'wall s':>7} {'kernel cpu s':>12} {'peak kernel MB':>15}")
    for path in paths:
        r = run(path, args.timeout)
        peak = max(peak, r["rss"])
        cpu += r["cpu"]
        print(f"{path.name:<50} {r['wall']:>7.1f} {r['cpu']:>12.1f} {r['rss'] / 2**20:>15.0f}")
    wall = time.perf_counter() - total
    print(f"{'the whole series (' + str(len(paths)) + ' notebooks)':<50} {wall:>7.1f} {cpu:>12.1f} {peak / 2**20:>15.0f}")
    print(f"course-time: {wall:.1f} s for {len(paths)} notebooks on {psutil.cpu_count()} CPUs "
          f"(target: under 120 s); peak kernel memory {peak / 2**20:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
