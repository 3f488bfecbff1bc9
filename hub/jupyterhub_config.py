"""JupyterHub for one server, set up the way The Littlest JupyterHub (TLJH) sets one up.

TLJH runs a hub in one environment and the students' servers in another (``/opt/tljh/hub``,
``/opt/tljh/user``), one Unix user per student, behind one proxy. This file is that layout for a
plain JupyterHub, for a server where TLJH's own installer cannot run (it needs systemd as PID 1,
see docs/instructor.md). It was tried with ``tools/hub_trial.py``; the paths come from the
environment so that the same file serves a trial and a class:

    KSMLAB_HUB_STATE  folder for the hub's database, cookie secret and proxy token (created)
    KSMLAB_USER_ENV   the students' environment (a venv holding jupyterhub, the kit and its lab extra)
    KSMLAB_HUB_PORT   the port students open (the proxy's), default 8000
    KSMLAB_HUB_TOKEN  optional: an API token for a service named "trial" (the trial driver; admin
                      of users and servers), never written into this file

Students log in with their Unix name; here the DummyAuthenticator (any password) stands in for
TLJH's FirstUseAuthenticator or PAM, which is only fit for a trial on loopback. A class uses
``c.JupyterHub.authenticator_class = "pam"`` (or TLJH's) and real passwords.
"""

import os

c = get_config()  # noqa: F821  (JupyterHub's config loader defines it)

STATE = os.environ.get("KSMLAB_HUB_STATE", "/srv/ksmlab-hub")
USER_ENV = os.environ.get("KSMLAB_USER_ENV", "/opt/ksmlab/user")
PORT = int(os.environ.get("KSMLAB_HUB_PORT", "8000"))
os.makedirs(STATE, mode=0o700, exist_ok=True)

# --- the proxy (configurable-http-proxy from npm) and the hub, on loopback for a trial
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{PORT + 81}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PORT + 1}"
if os.environ.get("KSMLAB_CHP"):
    c.ConfigurableHTTPProxy.command = [os.environ["KSMLAB_CHP"]]
c.JupyterHub.db_url = f"sqlite:///{STATE}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{STATE}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{STATE}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True          # stopping the hub stops every student's server

# --- students: real Unix users (TLJH: useradd jupyter-NAME), servers started as them
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [f"{USER_ENV}/bin/jupyterhub-singleuser"]
c.Spawner.environment = {"PATH": f"{USER_ENV}/bin:/usr/local/bin:/usr/bin:/bin"}   # TLJH: SystemdSpawner.extra_paths
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab/tree/ksmlab/notebooks"
# A loaded machine starts a server slowly (see the measured start times in docs/instructor.md).
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
# LocalProcessSpawner does not enforce these (it only passes MEM_LIMIT/CPU_LIMIT to the server);
# TLJH's SystemdSpawner does (`tljh-config set limits.memory 1G`).
c.Spawner.mem_limit = "1G"
c.Spawner.cpu_limit = 1.0
# JupyterLab keeps a lesson's kernel running after its tab closes: shut idle kernels down after
# 20 minutes so that a student who opens all ten lessons does not hold ten kernels (measured: about
# 100-150 MB each).
c.Spawner.args = [
    "--MappingKernelManager.cull_idle_timeout=1200",
    "--MappingKernelManager.cull_interval=120",
    "--MappingKernelManager.cull_connected=True",
]

# --- the trial driver: a service token with just the rights it needs (never in this file)
if os.environ.get("KSMLAB_HUB_TOKEN"):
    c.JupyterHub.services = [{"name": "trial", "api_token": os.environ["KSMLAB_HUB_TOKEN"]}]
    c.JupyterHub.load_roles = [{
        "name": "trial",
        "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"],
        "services": ["trial"],
    }]
