"""Real ``cc-backend serve`` processes: the :80 redirect, the privilege drop, and the systemd unit as written."""

from __future__ import annotations

import array
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from peerdata import copy_archive
from support.cli import EXE, run_cli
from support.server import free_port, self_signed
from support.site import auth, configure, token, write_site

UNIT = REPO / "init" / "clustercockpit.service"
INIT_README = REPO / "init" / "README.md"
REDIRECT_PORT = 80
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: binds port 80 and changes users")
ARCHIVED_JOB = ("emmy", 1404397, 1609300556)  # in the peer archive


def unprivileged() -> tuple[str, str]:
    """An unprivileged user and group that exist here (Debian: nobody/nogroup)."""
    for user, group in (("nobody", "nogroup"), ("nobody", "nobody")):
        try:
            pwd.getpwnam(user), grp.getgrnam(group)
        except KeyError:
            continue
        return user, group
    pytest.skip("no unprivileged user nobody with group nogroup or nobody")


def chown_tree(path: Path, user: str, group: str) -> None:
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    for p in [path, *path.rglob("*")]:
        os.lchown(p, uid, gid)


def proc_ids(pid: int) -> dict[str, list[int]]:
    """Uid, Gid (real, effective, saved, filesystem) and supplementary Groups of a running process."""
    ids = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            ids[key] = [int(v) for v in value.split()]
    return ids


@pytest.fixture
def public_dir():
    """A directory an unprivileged user can reach (pytest's tmp_path lives below a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="cc-net-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_site(root: Path, **main: object) -> Path:
    """An installation in ``root``: config.json, .env, var/job-archive (peer archive), var/job.db after init-db."""
    (root / "var").mkdir(parents=True)
    archive = copy_archive(root / "var", "job-archive")
    write_site(root, {"addr": "127.0.0.1:0", "db": str(root / "var" / "job.db"), **main}, archive)
    (root / ".env").chmod(0o600)
    r = run_cli("--config", str(root / "config.json"), "-init-db", cwd=root)
    assert r.returncode == 0, r.stderr
    return root


def api_token(site: Path, roles: list[str]) -> dict[str, str]:
    return auth(token(site, roles, "nettest"))


class Proc:
    """A server process with its output in a log file; ``stop()`` sends SIGTERM and returns the exit code."""

    def __init__(self, args: list[str], cwd: Path, log: Path, **popen: object) -> None:
        self.log_path = log
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, **popen)

    @classmethod
    def serve(cls, site: Path, **popen: object) -> Proc:
        return cls([str(EXE), "--loglevel", "info", "--config", str(site / "config.json"), "serve"], site,
                   site.parent / f"{site.name}-server.log", **popen)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_http(self, url: str, *, verify: object = True, timeout: float = 20) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                return httpx.get(url, verify=verify, timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail(f"no answer from {url} within {timeout} s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def public_venv():
    """A virtual environment whose ``bin/cc-backend`` an unprivileged user can run from the start.

    Normally that is this test's own venv. Here its interpreter may live below root's 0700 home
    (pyenv); then a venv of the system's python3 (same minor version) is made in /tmp, reusing the
    installed packages through a .pth file, with the console script pip would have written.
    """
    user, group = unprivileged()
    probe = {"user": user, "group": group, "extra_groups": [], "cwd": "/", "capture_output": True, "timeout": 60}
    try:
        if subprocess.run([str(EXE), "--version"], **probe).returncode == 0:
            yield Path(sys.prefix)
            return
    except PermissionError:
        pass
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if system_python is None:
        pytest.skip(f"{user} cannot run {EXE} and there is no system python3")
    version = subprocess.run([system_python, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip(f"{user} cannot run {EXE}; the system python3 {version} differs from this one")
    root = Path(tempfile.mkdtemp(prefix="cc-venv-", dir="/tmp"))
    root.chmod(0o755)
    venv = root / "venv"
    subprocess.run([system_python, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    # addsitedir also runs the .pth files there, among them the editable install of cc_backend.
    (site_packages / "cc-test-packages.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    script = venv / "bin" / "cc-backend"
    script.write_text(f"#!{venv}/bin/python3\n" + EXE.read_text().split("\n", 1)[1])
    script.chmod(0o755)
    r = subprocess.run([str(script), "--version"], **probe)
    assert r.returncode == 0, r.stderr
    yield venv
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def procs():
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


# --- privilege drop ---------------------------------------------------------------------------------


@ROOT_ONLY
def test_privilege_drop_to_main_user_and_group(public_dir, procs):
    user, group = unprivileged()
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    site = make_site(public_dir / "site", user=user, group=group)
    port = free_port()
    configure(site, addr=f"127.0.0.1:{port}")

    # Everything still root's: the server refuses to start instead of failing at its first write.
    r = run_cli("--config", str(site / "config.json"), "serve", cwd=site)
    assert r.returncode == 78, r.stderr
    assert f"main.db: after dropping privileges to user {user}, group {group}" in r.stderr and "chown" in r.stderr
    assert "listening at" not in r.stderr

    chown_tree(site, user, group)  # what init/README.md tells the admin to do
    for secret in (site / "config.json", site / ".env"):  # these are read before the drop: root's is fine
        os.chown(secret, 0, 0)
    srv = Proc.serve(site)
    procs.append(srv)
    url = f"http://127.0.0.1:{port}"
    assert srv.wait_http(url + "/healthz").status_code == 200
    ids = proc_ids(srv.proc.pid)
    assert ids["Uid"] == [uid] * 4 and ids["Gid"] == [gid] * 4
    assert 0 not in ids["Groups"]
    assert f"dropped privileges to user {user}, group {group}" in srv.output()
    # A Python the server's user cannot read (here: pyenv under /root) is named at start-up.
    stdlib = sysconfig.get_paths()["stdlib"]
    readable = subprocess.run(["test", "-r", stdlib, "-a", "-x", stdlib], user=uid, group=gid).returncode == 0
    assert (f"Python's standard library {stdlib} is not readable by user {user}" in srv.output()) is not readable

    # Reads and writes of the database and the archive work as the unprivileged user.
    headers = api_token(site, ["api"])
    jobs = httpx.get(url + "/api/jobs/", headers=headers).json()["jobs"]
    assert [j["jobId"] for j in jobs] == [1404397, 1403244]
    start = {"jobId": 4242, "user": "u", "project": "p", "cluster": "fritz", "partition": "default",
             "walltime": 3600, "numNodes": 1, "shared": "none", "monitoringStatus": 1, "smt": 1,
             "resources": [{"hostname": "f0101"}], "startTime": 1700000000}
    r = httpx.post(url + "/api/jobs/start_job/", json=start, headers=headers)
    assert r.status_code == 201, r.text
    archived = next(j for j in jobs if j["jobId"] == ARCHIVED_JOB[1])
    r = httpx.post(url + f"/api/jobs/tag_job/{archived['id']}", headers=headers,
                   json=[{"type": "net", "name": "dropped", "scope": "global"}])
    assert r.status_code == 200, r.text
    cluster, job_id, start_time = ARCHIVED_JOB
    meta = site / "var" / "job-archive" / cluster / str(job_id // 1000) / f"{job_id % 1000:03d}" / str(start_time) / "meta.json"
    assert any(tag["name"] == "dropped" for tag in json.loads(meta.read_text())["tags"])
    assert meta.stat().st_uid == uid  # rewritten by the unprivileged process
    # The efficiency report runs the job-class rules: their parser (lark) was loaded before the drop.
    r = httpx.get(url + f"/api/jobs/report/{archived['id']}", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["job"]["jobId"] == job_id and r.json()["checks"], r.text
    # SQLite's WAL files belong to the server's user although root opened the database first
    # (SQLite running as root gives the files it creates to the database file's owner).
    for extra in ("job.db-wal", "job.db-shm"):
        if (site / "var" / extra).exists():
            assert (site / "var" / extra).stat().st_uid == uid, extra
    assert srv.stop() == 0, srv.output()


@pytest.mark.parametrize("setting, message", [
    ({"user": "cc-no-such-user"}, "main.user: no such user: 'cc-no-such-user'"),
    ({"group": "cc-no-such-group"}, "main.group: no such group: 'cc-no-such-group'"),
])
def test_unknown_user_or_group_stops_serve_before_it_listens(public_dir, setting, message):
    site = make_site(public_dir / "site", **setting)
    with socket.socket() as taken:
        # The port is taken: had serve bound before looking the name up, it would report the port.
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        configure(site, addr="127.0.0.1:%d" % taken.getsockname()[1])
        r = run_cli("--config", str(site / "config.json"), "serve", cwd=site)
    assert r.returncode == 78, r.stderr
    assert message in r.stderr
    assert "cannot listen" not in r.stderr and "listening at" not in r.stderr


@ROOT_ONLY
def test_an_unprivileged_process_cannot_switch_user(public_dir, public_venv):
    user, group = unprivileged()
    site = make_site(public_dir / "site", user="root", addr=f"127.0.0.1:{free_port()}")
    chown_tree(site, user, group)
    r = subprocess.run([str(public_venv / "bin" / "cc-backend"), "--config", str(site / "config.json"), "serve"],
                       cwd=site, capture_output=True, text=True, timeout=60, user=user, group=group, extra_groups=[])
    assert r.returncode == 78, r.stderr
    assert f"cannot switch to user root, group -: cc-backend runs as '{user}', not as root" in r.stderr
    assert "listening at" not in r.stderr


# --- main.redirect-http-to ----------------------------------------------------------------------------


@pytest.fixture
def port_80():
    """Skip unless 127.0.0.1:80 can be bound here (root, and nothing else listening)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no listener
        try:
            bind_like_a_server(s, REDIRECT_PORT)
        except PermissionError:
            pytest.skip("binding port 80 needs root (or CAP_NET_BIND_SERVICE)")
        except OSError as exc:
            pytest.skip(f"port 80 is taken on this machine ({exc.strerror}); cannot test the real :80 redirect")


def bind_like_a_server(sock: socket.socket, port: int) -> None:
    """Bind as cheroot does (SO_REUSEADDR): connections in TIME_WAIT on the port do not count, a listener does.

    The server closes first when it does not read a request's body (see server/transport.py), which
    leaves TIME_WAIT entries on its port for a minute; they do not keep a new server from binding.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))


@ROOT_ONLY
def test_redirect_http_to_on_port_80(public_dir, procs, port_80):
    user, group = unprivileged()
    site = make_site(public_dir / "site")
    cert_file, key_file = self_signed(site)
    chown_tree(site, user, group)
    os.chown(key_file, 0, 0)
    key_file.chmod(0o600)  # root's only: read before the privilege drop
    port = free_port()
    target = "https://cc.example.org:8443/"
    configure(site, addr=f"127.0.0.1:{port}", https_cert_file=str(cert_file), https_key_file=str(key_file),
              redirect_http_to=target, user=user, group=group)

    # HTTPS on main.addr, the redirect on :80 bound as root, serving on as the unprivileged user.
    srv = Proc.serve(site)
    procs.append(srv)
    ctx = ssl.create_default_context(cafile=str(cert_file))
    assert srv.wait_http(f"https://127.0.0.1:{port}/healthz", verify=ctx).status_code == 200
    assert proc_ids(srv.proc.pid)["Uid"][1] == pwd.getpwnam(user).pw_uid
    for path in ("/", "/monitoring/jobs/?cluster=emmy&state=running", "/api/jobs/?a=1&a=2"):
        r = httpx.get(f"http://127.0.0.1:{REDIRECT_PORT}{path}", follow_redirects=False)
        assert r.status_code == 301, path
        assert r.headers["location"] == target.rstrip("/") + path
    r = httpx.post(f"http://127.0.0.1:{REDIRECT_PORT}/login", data={"x": "y"}, follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == target + "login"
    assert srv.stop() == 0, srv.output()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the closed connections may be in TIME_WAIT
        s.bind(("127.0.0.1", REDIRECT_PORT))  # released on shutdown

    # As upstream, the redirect does not depend on HTTPS.
    configure(site, https_cert_file=None, https_key_file=None, user=None, group=None)
    srv = Proc.serve(site)
    procs.append(srv)
    assert srv.wait_http(f"http://127.0.0.1:{port}/healthz").status_code == 200
    r = httpx.get(f"http://127.0.0.1:{REDIRECT_PORT}/x?y=1", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "https://cc.example.org:8443/x?y=1"
    assert srv.stop() == 0, srv.output()

    # main.addr on port 80 itself: the setting is ignored (with a warning) instead of colliding.
    configure(site, addr=f"127.0.0.1:{REDIRECT_PORT}")
    srv = Proc.serve(site)
    procs.append(srv)
    r = srv.wait_http(f"http://127.0.0.1:{REDIRECT_PORT}/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert "main.redirect-http-to is ignored: main.addr already uses port 80" in srv.output()
    assert srv.stop() == 0, srv.output()


def test_redirect_port_taken_is_a_clear_error(public_dir, port_80):
    site = make_site(public_dir / "site", addr=f"127.0.0.1:{free_port()}", **{"redirect-http-to": "https://x.example/"})
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT; a listener still excludes others
        taken.bind(("127.0.0.1", REDIRECT_PORT))
        taken.listen()
        r = run_cli("--config", str(site / "config.json"), "serve", cwd=site)
    assert r.returncode == 78, r.stderr
    assert "main.redirect-http-to: cannot listen on 127.0.0.1:80" in r.stderr


# --- the systemd unit ---------------------------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd's unit syntax as far as this unit uses it: sections, KEY=VALUE, repeatable keys, # comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"{path}: cannot parse {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def the(section: dict[str, list[str]], key: str) -> str:
    values = section[key]
    assert len(values) == 1, f"{key} given {len(values)} times"
    return values[0]


def service_account(service: dict[str, list[str]]) -> tuple[str, str, str]:
    """(user, group, note): the unit's User=/Group= when they exist here, else nobody/nogroup standing in."""
    user, group = the(service, "User"), the(service, "Group")
    try:
        pwd.getpwnam(user), grp.getgrnam(group)
        return user, group, ""
    except KeyError:
        stand_in = unprivileged()
        # Creating system users is not something a test should do to a shared machine.
        return (*stand_in, f"{user}:{group} does not exist here; {stand_in[0]}:{stand_in[1]} stands in")


def receive_notify(sock: socket.socket) -> tuple[bytes, int, int]:
    """One sd_notify datagram with the sender's (pid, uid), as systemd checks them for NotifyAccess=main."""
    data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(3 * 4))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, uid, _gid = array.array("i", payload[:12])
            return data, pid, uid
    pytest.fail("no sender credentials on the notify socket")


def systemd_usable() -> bool:
    return Path("/proc/1/comm").read_text().strip() == "systemd" and shutil.which("systemctl") is not None


@ROOT_ONLY
def test_systemd_unit_starts_the_server_as_written(public_dir, public_venv):
    """The unit's ExecStart, run as systemd would: WorkingDirectory, User/Group, Environment, UMask, Type=notify.

    systemd is not PID 1 in this container (``systemctl start`` cannot work), and installing a unit
    system-wide from a test would not be acceptable on a shared machine anyway. So the unit file is
    parsed and its ExecStart is run exactly as written, with the install prefix it documents
    (``WorkingDirectory``) mapped onto a temporary directory. Two other stand-ins: the virtual
    environment is a symlink to an installed one (``public_venv``, instead of ``pip install``), and nobody/nogroup
    stand in for the unit's user when it does not exist here.
    """
    unit = parse_unit(UNIT)
    service = unit["Service"]
    prefix = the(service, "WorkingDirectory")
    assert prefix.startswith("/") and the(service, "ExecStart").startswith(prefix + "/")
    user, group, _note = service_account(service)
    pw = pwd.getpwnam(user)
    uid, gid = pw.pw_uid, grp.getgrnam(group).gr_gid

    # The README's useradd creates the unit's User= with a group of the same name, the unit's Group=.
    useradd = next(line for line in INIT_README.read_text().splitlines() if line.startswith("useradd "))
    assert "--user-group" in useradd and useradd.split()[-1] == the(service, "User") == the(service, "Group")
    assert f"--home-dir {prefix}" in useradd

    def here(text: str) -> str:
        return text.replace(prefix, str(public_dir) + prefix)

    install = Path(here(prefix))
    # init/README.md steps 1-3, as the service user.
    install.mkdir(parents=True)
    for p in [install, *install.parents]:
        if p == public_dir:
            break
        p.chmod(0o755)
    os.chown(install, uid, gid)
    (install / ".venv").symlink_to(public_venv)
    as_service = {"cwd": install, "user": uid, "group": gid, "extra_groups": [], "capture_output": True,
                  "text": True, "timeout": 120}
    r = subprocess.run([".venv/bin/cc-backend", "init"], **as_service)
    assert r.returncode == 0, r.stderr
    assert (install / ".env").stat().st_mode & 0o077 == 0  # chmod 600 .env: already so
    port = free_port()
    config = json.loads((install / "config.json").read_text())
    config["main"]["addr"] = f"127.0.0.1:{port}"
    (install / "config.json").write_text(json.dumps(config, indent=2))
    r = subprocess.run([".venv/bin/cc-backend", "init-db"], **as_service)
    assert r.returncode == 0, r.stderr

    # The database and the archive lie below ReadWritePaths= (ProtectSystem=strict makes the rest read-only).
    writable = [Path(here(p)) for value in service["ReadWritePaths"] for p in value.split()]
    data_paths = [install / (config["main"].get("db") or "./var/job.db"), install / config["archive"]["path"]]
    for path in data_paths:
        assert any(path.resolve().is_relative_to(w) for w in writable), path

    argv = shlex.split(here(the(service, "ExecStart")))
    assert Path(argv[0]).is_file() and os.access(argv[0], os.X_OK)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", "HOME": pw.pw_dir, "USER": user,
           "LOGNAME": user, "LANG": "C.UTF-8"}
    for assignment in service.get("Environment", []):
        for item in shlex.split(assignment):
            key, _, value = item.partition("=")
            env[key] = value
    umask = int(the(service, "UMask"), 8)
    kill_signal = getattr(signal, the(service, "KillSignal"))
    stop_timeout = float(the(service, "TimeoutStopSec"))
    assert the(service, "Type") == "notify" and the(service, "NotifyAccess") == "main"

    def start_unit(log_name: str) -> tuple[Proc, socket.socket]:
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify_path = public_dir / f"{log_name}.sock"
        notify.bind(str(notify_path))
        notify_path.chmod(0o666)
        notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        notify.settimeout(20)
        proc = Proc(argv, Path(here(the(service, "WorkingDirectory"))), public_dir / f"{log_name}.log",
                    env={**env, "NOTIFY_SOCKET": str(notify_path)}, user=uid, group=gid, extra_groups=[],
                    umask=umask)
        return proc, notify

    def run_unit(log_name: str) -> str:
        proc, notify = start_unit(log_name)
        try:
            message, pid, sender_uid = receive_notify(notify)  # Type=notify: started once READY=1 arrives
            assert message == b"READY=1", proc.output()
            assert pid == proc.proc.pid and sender_uid == uid  # NotifyAccess=main accepts it
            r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert r.status_code == 200 and r.json() == {"status": "ok"}
            assert proc_ids(proc.proc.pid)["Uid"] == [uid] * 4
            started = time.monotonic()
            assert proc.stop(kill_signal, timeout=stop_timeout) == 0, proc.output()
            assert time.monotonic() - started < min(stop_timeout, 10)
            assert receive_notify(notify)[0] == b"STOPPING=1"
            return proc.output()
        finally:
            proc.stop()
            notify.close()

    output = run_unit("unit")
    assert f"HTTP server listening at http://127.0.0.1:{port}/" in output
    db = install / "var" / "job.db"
    assert db.stat().st_uid == uid

    # main.user/main.group naming the unit's own user and group (the "run as root" variant of the
    # README, left in config.json) are fine under User=/Group=: nothing to switch.
    config["main"].update({"user": user, "group": group})
    (install / "config.json").write_text(json.dumps(config, indent=2))
    run_unit("unit-with-main-user")


def test_systemd_analyze_verify(public_dir):
    """``systemd-analyze verify`` on the unit, with its install prefix mapped onto a layout that exists."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    service = parse_unit(UNIT)["Service"]
    prefix = the(service, "WorkingDirectory")
    install = Path(str(public_dir) + prefix)
    (install / "var").mkdir(parents=True)
    (install / ".venv").symlink_to(sys.prefix)
    unit = public_dir / UNIT.name
    unit.write_text(UNIT.read_text().replace(prefix, str(install)))
    r = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines()
                if line.strip() and not re.search(r"Failed to (connect|open).*bus", line)]
    assert r.returncode == 0 and problems == [], r.stdout + r.stderr
