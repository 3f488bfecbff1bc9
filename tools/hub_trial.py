"""Serve the kit to simulated students through a real JupyterHub on this machine, and measure a seat.

What it does, as root, on a machine with JupyterHub installed in one environment (``--hub-env``),
the students' environment in another (``--user-env``: jupyterhub, the kit with its ``lab`` extra,
nbgitpuller) and configurable-http-proxy from npm (``--chp``):

1. creates one Unix user per student (``jupyter-student01``..., as TLJH names them), refusing to
   touch a user that already exists;
2. starts JupyterHub with ``hub/jupyterhub_config.py`` (one server, LocalProcessSpawner), with a
   service token made for this run only;
3. through the hub's REST API, creates the hub users and starts every student's server at once,
   timing each from the request to "ready";
4. gives each student the kit's files with nbgitpuller (``/user/NAME/git-pull/api``), as a TLJH
   class would from a link;
5. measures each idle server (RSS and PSS of the student's processes);
6. in each server, opens one lesson as JupyterLab does (the sessions API) and runs every code cell
   in order over the kernel's websocket (Run All), all students at once; records errors, wall time,
   the kernel's CPU seconds and peak RSS (VmHWM) and the seat's memory afterwards;
7. optionally (``--browser N``) lets N students log in on the hub's page in headless Chromium
   (playwright) and Run All another lesson from JupyterLab's Run menu, counting error outputs;
   optionally (``--series``) lets the first student run all ten lessons one after another, leaving
   every kernel running as JupyterLab does when a tab is closed, and measures the seat then;
8. stops every server through the API, stops the hub and removes the users and their homes, also
   when a step fails or the run is interrupted.

It reads the KSM settings in /sys/kernel/mm/ksm before and after and says whether they changed
(the lessons' Run All never touches the live kernel). It prints a table and, with ``--json``,
writes every figure to a file. Needs tornado (JupyterHub's own dependency): run it with the hub
environment's Python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parent.parent
KSM = Path("/sys/kernel/mm/ksm")
KSM_SETTINGS = ("run", "pages_to_scan", "sleep_millisecs", "merge_across_nodes", "use_zero_pages",
                "max_page_sharing", "smart_scan")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- /proc

def procs_of(uid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if d.stat().st_uid == uid:
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def seat(uid: int) -> dict:
    """The memory of every process of a student: the server, its kernels, anything else."""
    pids = procs_of(uid)
    kernels = [p for p in pids if "ipykernel" in cmdline(p)]
    servers = [p for p in pids if "jupyterhub-singleuser" in cmdline(p)]
    return {
        "processes": len(pids),
        "kernels": len(kernels),
        "rss_mb": sum(status_kb(p, "VmRSS") for p in pids) / 1024,
        "pss_mb": sum(pss_kb(p) for p in pids) / 1024,
        "server_rss_mb": sum(status_kb(p, "VmRSS") for p in servers) / 1024,
        "server_pss_mb": sum(pss_kb(p) for p in servers) / 1024,
        "server_cpu_s": sum(cpu_seconds(p) for p in servers),
    }


def hub_and_proxy(hub_pid: int, api_port: int) -> dict:
    """RSS and CPU of the hub (root's processes in the hub's session; the students' servers run as
    their own users) and of its proxy (JupyterHub starts it in a session of its own: found by its
    API port)."""
    out = {}
    for pid in procs_of(0):
        line = cmdline(pid)
        if "configurable-http-proxy" in line and str(api_port) in line:
            what = "proxy"
        else:
            try:
                sid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
            except (OSError, IndexError, ValueError):
                continue
            if sid != hub_pid:
                continue
            what = "hub"
        out[f"{what}_rss_mb"] = out.get(f"{what}_rss_mb", 0) + status_kb(pid, "VmRSS") / 1024
        out[f"{what}_cpu_s"] = out.get(f"{what}_cpu_s", 0) + cpu_seconds(pid)
    return out


def ksm_settings() -> dict:
    return {k: (KSM / k).read_text().strip() for k in KSM_SETTINGS if (KSM / k).exists()}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ----------------------------------------------------------------------------- the hub's API

class Hub:
    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.token = token
        self.http = AsyncHTTPClient(max_clients=64)

    async def call(self, method: str, path: str, body=None, timeout: float = 300, raw: bool = False):
        req = HTTPRequest(self.url + path, method=method, headers={"Authorization": f"token {self.token}"},
                          body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
                          request_timeout=timeout, follow_redirects=False)
        resp = await self.http.fetch(req, raise_error=False)
        if resp.code >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {resp.code} {resp.body[:300]!r}")
        if raw:
            return resp.body.decode(errors="replace")
        return json.loads(resp.body) if resp.body else None

    async def wait_up(self, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                await self.call("GET", "/hub/api/", timeout=5)
                return
            except Exception:
                await asyncio.sleep(0.5)
        raise RuntimeError("the hub did not answer within %d s" % timeout)


async def start_server(hub: Hub, name: str) -> float:
    t0 = time.monotonic()
    await hub.call("POST", f"/hub/api/users/{name}/server")
    while True:
        model = await hub.call("GET", f"/hub/api/users/{name}")
        server = (model.get("servers") or {}).get("")
        if server and server.get("ready"):
            return time.monotonic() - t0
        if time.monotonic() - t0 > 300:
            raise RuntimeError(f"{name}'s server was not ready after 300 s")
        await asyncio.sleep(0.25)


async def git_pull(hub: Hub, name: str, repo: str, branch: str) -> float:
    """nbgitpuller's API endpoint (what its link's page calls): clone the kit into ~/ksmlab."""
    t0 = time.monotonic()
    query = urlencode({"repo": repo, "branch": branch, "targetpath": "ksmlab"})
    text = await hub.call("GET", f"/user/{name}/git-pull/api?{query}", timeout=300, raw=True)
    if '"phase": "finished"' not in text and "'phase': 'finished'" not in text:
        raise RuntimeError(f"nbgitpuller did not finish for {name}: {text[-500:]}")
    return time.monotonic() - t0


def code_cells(notebook: Path) -> list[str]:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code"]


async def run_all(hub: Hub, name: str, uid: int, lesson: str, cells: list[str]) -> dict:
    """Open ``lesson`` (a path under the student's home) as JupyterLab does and run every code cell."""
    t0 = time.monotonic()
    session = await hub.call("POST", f"/user/{name}/api/sessions",
                             {"path": lesson, "type": "notebook", "name": Path(lesson).name,
                              "kernel": {"name": "python3"}})
    kernel_id = session["kernel"]["id"]
    ws_url = hub.url.replace("http", "ws", 1) + f"/user/{name}/api/kernels/{kernel_id}/channels"
    ws = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {hub.token}"}),
                                 max_message_size=256 * 2**20)
    errors = []
    session_id = uuid.uuid4().hex
    try:
        for index, code in enumerate(cells):
            msg_id = uuid.uuid4().hex
            await ws.write_message(json.dumps({
                "header": {"msg_id": msg_id, "username": name, "session": session_id, "msg_type": "execute_request",
                           "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            replied = idle = False
            while not (replied and idle):
                raw = await asyncio.wait_for(ws.read_message(), timeout=600)
                if raw is None:
                    raise RuntimeError(f"{name}: the kernel's websocket closed during cell {index}")
                if isinstance(raw, bytes):
                    continue
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "execute_reply":
                    replied = True
                    if msg["content"].get("status") != "ok":
                        errors.append(f"cell {index}: {msg['content'].get('ename')}: {msg['content'].get('evalue')}")
                elif kind == "status" and msg["content"].get("execution_state") == "idle":
                    idle = True
    finally:
        ws.close()
    wall = time.monotonic() - t0
    kernels = [p for p in procs_of(uid) if "ipykernel" in cmdline(p) and kernel_id in cmdline(p)]
    pid = kernels[0] if kernels else None
    return {"student": name, "lesson": Path(lesson).name, "cells": len(cells), "errors": errors, "wall_s": wall,
            "kernel_cpu_s": cpu_seconds(pid) if pid else None,
            "kernel_peak_rss_mb": status_kb(pid, "VmHWM") / 1024 if pid else None,
            "kernel_rss_mb": status_kb(pid, "VmRSS") / 1024 if pid else None,
            "kernel_pss_mb": pss_kb(pid) / 1024 if pid else None,
            "kernel_id": kernel_id, "session_id": session["id"]}


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


async def browser_student(hub: Hub, name: str, lesson: str, chromium: str) -> dict:
    """A student in a real browser: the hub's log-in page (any password: DummyAuthenticator), then
    the lesson in JupyterLab, Run All from the Run menu, and the error outputs counted."""
    from playwright.async_api import async_playwright      # only with --browser
    t0 = time.monotonic()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            await page.goto(f"{hub.url}/hub/login")
            await page.fill("#username_input", name)
            await page.fill("#password_input", "trial")
            await page.click("#login_submit")
            await page.wait_for_url(f"**/user/{name}/lab**", timeout=120_000)
            logged_in = time.monotonic() - t0
            await page.goto(f"{hub.url}/user/{name}/lab/workspaces/{uuid.uuid4().hex}/tree/{lesson}?reset")
            await page.wait_for_function("document.body.innerText.includes('Idle')", timeout=180_000)
            opened = time.monotonic() - t0
            await page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            await page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            await page.wait_for_function(
                "() => { const p = [...document.querySelectorAll('.jp-InputPrompt')].map(e => e.innerText);"
                " return p.length > 0 && !p.some(t => t.includes('*')) && p.filter(t => /\\[\\d+\\]/.test(t)).length > 0"
                " && document.body.innerText.includes('Idle'); }", timeout=300_000)
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                                  ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
            return {"student": name, "lesson": lesson, "logged_in_s": logged_in, "opened_s": opened,
                    "run_all_done_s": time.monotonic() - t0, "error_outputs": await errors.all_inner_texts(),
                    "executed_cells": await page.locator(".jp-CodeCell .jp-InputPrompt").count()}
        finally:
            await browser.close()


# ----------------------------------------------------------------------------- the run

def make_users(names: list[str]) -> None:
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        raise SystemExit(f"the user {name} already exists: this trial creates and removes its own users only")
    for name in names:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)


def remove_users(names: list[str]) -> list[str]:
    left = []
    for name in names:
        try:
            uid = pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
        for pid in procs_of(uid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        for pid in procs_of(uid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        r = subprocess.run(["userdel", "--remove", name], capture_output=True, text=True)
        if r.returncode not in (0, 12):        # 12: could not remove the mail spool (there is none)
            left.append(f"{name}: {r.stderr.strip()}")
    return left


async def trial(args, names: list[str], hub: Hub, report: dict) -> None:
    await hub.wait_up()
    report["hub_version"] = (await hub.call("GET", "/hub/api/"))["version"]
    for name in names:
        await hub.call("POST", f"/hub/api/users/{name}")
    report["load_before_start"] = loadavg()
    starts = await asyncio.gather(*(start_server(hub, n) for n in names))
    report["start_s"] = dict(zip(names, starts))
    report["pull_s"] = dict(zip(names, await asyncio.gather(*(git_pull(hub, n, args.repo, args.branch) for n in names))))
    await asyncio.sleep(args.settle)
    uids = {n: pwd.getpwnam(n).pw_uid for n in names}
    report["idle"] = {n: seat(uids[n]) for n in names}
    # the lessons as nbgitpuller put them in each student's home (what the student opens)
    homes = {n: Path(pwd.getpwnam(n).pw_dir) for n in names}
    lessons = sorted(p.name for p in (homes[names[0]] / "ksmlab" / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    if not lessons:
        raise RuntimeError("nbgitpuller left no lessons in ~/ksmlab/notebooks")
    plan = [(n, lessons[i % len(lessons)]) for i, n in enumerate(names)]
    report["load_before_lessons"] = loadavg()
    t0 = time.monotonic()
    runs = await asyncio.gather(*(run_all(hub, n, uids[n], f"ksmlab/notebooks/{p}",
                                          code_cells(homes[n] / "ksmlab" / "notebooks" / p)) for n, p in plan))
    report["lessons_wall_s"] = time.monotonic() - t0
    report["load_after_lessons"] = loadavg()
    report["runs"] = runs
    report["after_lesson"] = {n: seat(uids[n]) for n in names}
    report["hub_and_proxy"] = hub_and_proxy(report["hub_pid"], args.port + 1)
    if args.browser:
        # after the API run: a different lesson than the one each student ran, in a real browser
        report["browser"] = [await browser_student(hub, n, f"ksmlab/notebooks/{lessons[(i + 1) % len(lessons)]}",
                                                   args.chromium) for i, n in enumerate(names[:args.browser])]
    if args.series:
        first = names[0]
        # the lesson it ran already is still open; run the other nine after it, one by one
        series = []
        for p in lessons:
            if p == plan[0][1]:
                continue
            series.append(await run_all(hub, first, uids[first], f"ksmlab/notebooks/{p}",
                                        code_cells(homes[first] / "ksmlab" / "notebooks" / p)))
        report["series"] = series
        report["series_seat"] = seat(uids[first])


def print_report(report: dict) -> None:
    print(f"JupyterHub {report.get('hub_version')}, {len(report.get('start_s', {}))} students; "
          f"load before start {report.get('load_before_start')}")
    starts = sorted(report.get("start_s", {}).values())
    if starts:
        print(f"server start (all at once): min {starts[0]:.1f} s, median {starts[len(starts) // 2]:.1f} s, "
              f"max {starts[-1]:.1f} s")
    pulls = sorted(report.get("pull_s", {}).values())
    if pulls:
        print(f"nbgitpuller clone: min {pulls[0]:.1f} s, max {pulls[-1]:.1f} s")
    idle = list(report.get("idle", {}).values())
    if idle:
        print(f"idle server: RSS {min(s['server_rss_mb'] for s in idle):.0f}-{max(s['server_rss_mb'] for s in idle):.0f} MB, "
              f"PSS {min(s['server_pss_mb'] for s in idle):.0f}-{max(s['server_pss_mb'] for s in idle):.0f} MB")
    print(f"\n{'student':<20} {'lesson':<46} {'cells':>5} {'errors':>6} {'wall s':>7} {'cpu s':>6} "
          f"{'peak MB':>8} {'seat RSS MB':>11} {'seat PSS MB':>11}")
    for r in report.get("runs", []):
        s = report["after_lesson"][r["student"]]
        print(f"{r['student']:<20} {r['lesson']:<46} {r['cells']:>5} {len(r['errors']):>6} {r['wall_s']:>7.1f} "
              f"{r['kernel_cpu_s'] or 0:>6.1f} {r['kernel_peak_rss_mb'] or 0:>8.0f} {s['rss_mb']:>11.0f} {s['pss_mb']:>11.0f}")
        for e in r["errors"]:
            print("    ERROR", e)
    if report.get("hub_and_proxy"):
        h = report["hub_and_proxy"]
        print(f"hub: RSS {h.get('hub_rss_mb', 0):.0f} MB, {h.get('hub_cpu_s', 0):.1f} CPU s so far; proxy: RSS "
              f"{h.get('proxy_rss_mb', 0):.0f} MB, {h.get('proxy_cpu_s', 0):.1f} CPU s")
    if "lessons_wall_s" in report:
        print(f"all lessons at once: {report['lessons_wall_s']:.1f} s wall; load after {report['load_after_lessons']}")
    if "series" in report:
        s = report["series_seat"]
        cpu = sum(r["kernel_cpu_s"] or 0 for r in report["series"])
        print(f"\none student, the other nine lessons one after another (kernels left running): "
              f"{sum(r['wall_s'] for r in report['series']):.1f} s wall, {cpu:.1f} kernel CPU s, "
              f"errors {sum(len(r['errors']) for r in report['series'])}; the seat then: {s['kernels']} kernels, "
              f"RSS {s['rss_mb']:.0f} MB, PSS {s['pss_mb']:.0f} MB")
    for b in report.get("browser", []):
        print(f"\nin Chromium, {b['student']}: logged in after {b['logged_in_s']:.1f} s, {Path(b['lesson']).name} open "
              f"after {b['opened_s']:.1f} s, Run All done after {b['run_all_done_s']:.1f} s; {b['executed_cells']} code "
              f"cells, error outputs: {len(b['error_outputs'])}")
    print(f"\nKSM settings unchanged: {report.get('ksm_unchanged')}; users removed: {not report.get('users_left')}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub-env", required=True, help="environment with jupyterhub (its bin/jupyterhub runs)")
    parser.add_argument("--user-env", required=True, help="the students' environment (jupyterhub, ksmlab[lab], nbgitpuller)")
    parser.add_argument("--chp", required=True, help="the configurable-http-proxy command (npm)")
    parser.add_argument("--state", required=True, help="folder for the hub's database and secrets (created, removed after)")
    parser.add_argument("--repo", required=True, help="git URL that nbgitpuller clones for each student")
    parser.add_argument("--branch", default="main")
    parser.add_argument("--students", type=int, default=10)
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--settle", type=float, default=15.0, help="seconds between start and the idle reading")
    parser.add_argument("--series", action="store_true", help="the first student also runs all ten lessons")
    parser.add_argument("--browser", type=int, default=0, help="this many students also run a lesson in Chromium (playwright)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root: the trial creates Unix users and starts servers as them")
    names = [f"jupyter-student{i:02d}" for i in range(1, args.students + 1)]
    token = secrets.token_hex(32)
    report: dict = {"ksm_before": ksm_settings(), "cpus": os.cpu_count()}
    make_users(names)
    env = dict(os.environ, KSMLAB_HUB_STATE=args.state, KSMLAB_USER_ENV=args.user_env, KSMLAB_HUB_PORT=str(args.port),
               KSMLAB_HUB_TOKEN=token, KSMLAB_CHP=args.chp,
               PATH=f"{args.hub_env}/bin:{Path(args.chp).parent}:{os.environ.get('PATH', '')}")
    log = open(Path(args.state).with_suffix(".log"), "w")
    hub_proc = subprocess.Popen([f"{args.hub_env}/bin/jupyterhub", "-f", str(ROOT / "hub" / "jupyterhub_config.py")],
                                cwd="/", env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    report["hub_pid"] = hub_proc.pid
    hub = Hub(f"http://127.0.0.1:{args.port}", token)
    try:
        asyncio.run(trial(args, names, hub, report))
    finally:
        async def stop_all():
            for name in names:
                try:
                    await hub.call("DELETE", f"/hub/api/users/{name}/server", timeout=60)
                except Exception as e:               # not started, or already gone
                    report.setdefault("stop_errors", []).append(f"{name}: {e}")
        try:
            asyncio.run(stop_all())
        except Exception as e:
            report.setdefault("stop_errors", []).append(str(e))
        hub_proc.send_signal(signal.SIGTERM)
        try:
            hub_proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(hub_proc.pid, signal.SIGKILL)
        try:                                       # the proxy is the hub's child, in the hub's session
            os.killpg(hub_proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        report["users_left"] = remove_users(names)
        report["ksm_after"] = ksm_settings()
        report["ksm_unchanged"] = report["ksm_after"] == report["ksm_before"]
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
