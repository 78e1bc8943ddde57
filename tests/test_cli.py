"""The real ``cc-backend`` console script: upstream flag style, subcommands, output formats, exit codes."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from peerdata import PEER
from support.cli import EXE, cli, cli_process, run_cli
from support.server import free_port
from support.site import configure


def test_upstream_flag_style_end_to_end(site):
    r = cli(site, "-migrate-db")
    assert r.returncode == 0, r.stderr
    r = cli(site, "-init-db", "-add-user", "demo:admin,api:AdminDev", "--no-server")
    assert r.returncode == 0, r.stderr
    assert "init-db: 2 jobs" in r.stdout and "added user 'demo'" in r.stdout
    r = cli(site, "jobs", "list", "--format", "json")
    jobs = json.loads(r.stdout)
    assert [j["jobId"] for j in jobs] == [1404397, 1403244]
    assert jobs[0]["resources"][0]["hostname"] and jobs[0]["subCluster"] == "haswell"

    r = cli(site, "-jwt", "demo")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    from cc_backend.auth.keys import verify_jwt
    from cc_backend.config import load_env

    secrets = load_env(site / ".env", environ={})
    claims = verify_jwt(token, secrets.JWT_PUBLIC_KEY)
    assert claims["sub"] == "demo" and claims["roles"] == ["admin", "api"]
    assert claims["exp"] - claims["iat"] == 7200

    r = cli(site, "--del-user=demo")
    assert r.returncode == 0
    r = cli(site, "user", "list", "--format", "json")
    assert json.loads(r.stdout) == []


def test_readme_command_sets_up_a_fresh_site_in_one_go(site):
    """Upstream's README command for a new installation: no -migrate-db before it, no schema yet."""
    r = cli(site, "-init-db", "-add-user", "demo:admin,api:AdminDev", "-no-server")
    assert r.returncode == 0, r.stderr
    assert "init-db: 2 jobs" in r.stdout and "added user 'demo'" in r.stdout
    assert "No errors, server flag not set" in r.stderr
    r = cli(site, "db", "version")
    assert r.returncode == 0 and "11" in r.stdout, r.stdout + r.stderr
    r = cli(site, "user", "show", "demo", "--format", "json")
    assert json.loads(r.stdout)["roles"] == ["admin", "api"]
    r = cli(site, "jobs", "list", "--format", "json")
    assert [j["jobId"] for j in json.loads(r.stdout)] == [1404397, 1403244]


def test_add_user_alone_on_a_fresh_site_names_the_missing_schema(site):
    """Without -init-db nothing creates the schema: the error says how to create it."""
    r = cli(site, "-add-user", "demo:admin:pw")
    assert r.returncode != 0
    assert "database is empty" in r.stderr and "--migrate-db" in r.stderr


def test_go_bool_syntax_and_double_dash(site):
    assert cli(site, "--migrate-db=true").returncode == 0
    r = cli(site, "-init-db=true", "-server=false")
    assert r.returncode == 0 and "init-db: 2 jobs" in r.stdout, r.stderr


def test_outdated_database_names_the_flag(site, peer_db_path, tmp_path):
    if "mysql" in (site / "config.json").read_text():
        pytest.skip("the peer database is a SQLite file")
    cfg = json.loads((site / "config.json").read_text())
    cfg["main"]["db"] = str(peer_db_path)
    (site / "config.json").write_text(json.dumps(cfg))
    r = cli(site, "jobs", "list")
    assert r.returncode == 65
    assert "version 10 is outdated" in r.stderr and "--migrate-db" in r.stderr
    r = cli(site, "-migrate-db")
    assert r.returncode == 0 and "from schema version 10 to 11" in r.stdout
    r = cli(site, "jobs", "list", "--count")
    assert r.stdout.strip() == "544"
    r = cli(site, "jobs", "list", "--cluster", "fritz", "--items-per-page", "5", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 5 and {row["cluster"] for row in rows} == {"fritz"}
    r = cli(site, "jobs", "list", "--cluster", "fritz", "--sort", "foot.flops_any_avg:desc", "--items-per-page", "3",
            "--format", "json")
    flops = [j["footprint"]["flops_any_avg"] for j in json.loads(r.stdout)]
    assert flops == sorted(flops, reverse=True)
    r = cli(site, "jobs", "list", "--metric", "flops_any=10..", "--nodes", "1..1", "--count")
    assert int(r.stdout) > 0
    r = cli(site, "jobs", "show", "398800", "--cluster", "fritz", "--format", "json")
    assert json.loads(r.stdout)["id"] == 345
    r = cli(site, "tags", "list", "--format", "json")
    assert {t["name"]: t["scope"] for t in json.loads(r.stdout)}["python"] == "demo"
    r = cli(site, "jobs", "list", "--start-time", "last24h", "--count")
    assert r.stdout.strip() == "0"
    r = cli(site, "-revert-db")
    assert r.returncode == 0 and "to 10" in r.stdout


def test_table_output_and_clusters(site):
    cli(site, "-init-db")
    r = cli(site, "jobs", "list")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "jobId", "cluster", "subCluster"]
    assert "1404397" in r.stdout and "emmyUser6" in r.stdout
    r = cli(site, "clusters", "list", "--format", "json")
    clusters = {c["cluster"]: c for c in json.loads(r.stdout)}
    assert set(clusters) == {"alex", "emmy", "fritz"}
    assert clusters["emmy"]["jobs"] == 2 and "haswell" in clusters["emmy"]["subClusters"]
    r = cli(site, "archive", "info", "--format", "json")
    assert json.loads(r.stdout)[0]["jobs"] == 2
    r = cli(site, "archive", "validate")
    assert r.returncode == 0, r.stdout + r.stderr


def test_bad_input_gets_a_clear_error(site):
    cli(site, "-init-db")
    r = cli(site, "jobs", "list", "--state", "exploded")
    assert r.returncode == 2 and "state" in r.stderr and "exploded" in r.stderr
    r = cli(site, "jobs", "list", "--nodes", "many")
    assert r.returncode == 2 and "numNodes" in r.stderr
    r = cli(site, "jobs", "list", "--sort", "resources")
    assert r.returncode == 2 and "cannot sort" in r.stderr
    r = cli(site, "jobs", "show", "42")
    assert r.returncode == 3 and "no job 42" in r.stderr
    r = cli(site, "-add-user", "bob:wizard:pw")
    assert r.returncode == 2 and "wizard" in r.stderr
    r = cli(site, "--no-such-flag")
    assert r.returncode == 2 and "no-such-flag" in r.stderr


def test_import_job_flag(site, tmp_path):
    shutil.copyfile(PEER / "importer" / "cluster-fritz.json", site / "job-archive" / "fritz" / "cluster.json")
    cli(site, "-migrate-db")
    imp = PEER / "importer"
    spec = f"{imp / 'meta-fritzMinimal.input'}:{imp / 'data-fritzMinimal.json'},{imp / 'meta-fritzError.input'}:{imp / 'data-fritzError.json'}"
    r = cli(site, "-import-job", spec)
    assert r.returncode == 0, r.stderr
    assert "imported 2 job(s)" in r.stdout
    r = cli(site, "jobs", "list", "--cluster", "fritz", "--format", "json")
    assert {(j["jobId"], j["duration"]) for j in json.loads(r.stdout)} == {(398764, 177), (398955, 260)}
    r = cli(site, "import", f"{imp / 'meta-fritzMinimal.input'}:{imp / 'data-fritzMinimal.json'}")
    assert r.returncode == 4 and "already in the database" in r.stderr


def test_init_creates_everything_once(tmp_path):
    r = run_cli("--init", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("config.json", ".env", "var/job.db", "var/job-archive/version.txt"):
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "var/job-archive/version.txt").read_text() == "3\n"
    assert oct((tmp_path / ".env").stat().st_mode & 0o777) == "0o600"
    before = (tmp_path / ".env").read_text()
    r = run_cli("init", cwd=tmp_path)
    assert r.returncode == 78 and "refusing" in r.stderr
    assert (tmp_path / ".env").read_text() == before
    r = run_cli("--version", cwd=tmp_path)
    assert "SQL db version: 11" in r.stdout and "Job archive version: 3" in r.stdout
    assert "schema version 11" in r.stdout


def test_gen_keypair_format(tmp_path):
    import base64

    r = run_cli("gen-keypair", "--format", "json", cwd=tmp_path)
    keys = json.loads(r.stdout)
    assert len(base64.b64decode(keys["JWT_PUBLIC_KEY"])) == 32
    assert len(base64.b64decode(keys["JWT_PRIVATE_KEY"])) == 64
    r = run_cli("gen-keypair", cwd=tmp_path)
    assert r.stdout.startswith('JWT_PUBLIC_KEY="')


def test_bare_invocation_starts_the_server(site):
    """A bare `cc-backend` (like `serve` and `--server`) serves HTTP until SIGTERM."""
    import signal
    import subprocess
    import time
    import urllib.request

    cli(site, "-migrate-db")
    port = free_port()
    configure(site, addr=f"127.0.0.1:{port}")
    proc = subprocess.Popen([str(EXE), "--config", str(site / "config.json")], cwd=site,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    assert json.loads(response.read()) == {"status": "ok"}
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not answer"
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_help_lists_every_command_without_importing_them(tmp_path):
    r = run_cli("--help", cwd=tmp_path)
    for name in ("init-db", "import", "jobs", "user", "clusters", "tags", "archive", "demo", "gen-keypair", "db"):
        assert f"  {name} " in r.stdout


def test_db_maintenance_flags(site):
    assert cli(site, "-migrate-db").returncode == 0
    r = cli(site, "-optimize-db")
    assert r.returncode == 0 and "optimized" in r.stdout, r.stderr
    r = cli(site, "-force-db")
    assert r.returncode == 0 and "clean at schema version 11" in r.stdout
    r = cli(site, "db", "version", "--format", "json")
    info = json.loads(r.stdout)
    assert info["database_version"] == 11 and info["database_dirty"] is False
    assert info["schema_version"] == 11 and info["archive_path_version"] == 3


def test_loglevel_and_logdate(site):
    cli(site, "-migrate-db")
    r = cli_process(site, "-loglevel", "info", "-logdate", "-init-db")  # logging is set up once per process
    assert r.returncode == 0
    import re

    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO cc_backend\.importer: init-db: rows loaded", r.stderr, re.M), r.stderr
    r = cli_process(site, "-loglevel", "warn", "-init-db")
    assert "INFO" not in r.stderr
    r = cli(site, "-loglevel", "loud")
    assert r.returncode == 2 and "loglevel" in r.stderr


def test_action_flags_and_subcommands_do_not_mix(site):
    cli(site, "-migrate-db")
    r = cli(site, "-del-user", "demo", "tags", "list")
    assert r.returncode == 2 and "--del-user cannot be combined with the subcommand 'tags'" in r.stderr


def test_server_false_is_an_explicit_no(site):
    r = cli(site, "-migrate-db")
    r = cli(site, "-server=false")
    assert r.returncode == 0 and "server flag not set" in r.stderr


def test_init_db_shows_progress_with_count_and_rate_on_a_terminal(site):
    import shlex
    import subprocess

    if shutil.which("script") is None:
        pytest.skip("util-linux `script` (a pseudo-terminal) is not installed")
    command = f"{shlex.quote(str(EXE))} --config {shlex.quote(str(site / 'config.json'))} init-db"
    out = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, cwd=site,
                         timeout=120).stdout
    assert "init-db: 2 jobs" in out
    assert "2 jobs [" in out and "jobs/s]" in out  # tqdm's counter with the rate


def test_action_flags_and_subcommands_print_the_same(site):
    """One function per action: upstream's flag and its subcommand run it and print the same lines."""
    assert cli(site, "db", "migrate").stdout.startswith("database migrated from schema version")
    printed = {}
    for flag, subcommand in (("-migrate-db", ["db", "migrate"]), ("-version", ["db", "version"]),
                             ("-optimize-db", ["db", "optimize"]), ("-force-db", ["db", "force"])):
        by_flag, by_subcommand = cli(site, flag), cli(site, *subcommand)
        assert by_flag.returncode == by_subcommand.returncode == 0, by_flag.stderr + by_subcommand.stderr
        assert by_flag.stdout == by_subcommand.stdout, flag
        printed[flag] = by_flag.stdout
    assert printed["-migrate-db"] == "database is at schema version 11\n"
    assert "SQL db version: 11\n" in printed["-version"] and "schema version 11" in printed["-version"]
    assert printed["-optimize-db"] in ("database optimized (VACUUM, ANALYZE)\n", "database optimized (OPTIMIZE TABLE)\n")
    assert printed["-force-db"] == "database marked clean at schema version 11\n"
