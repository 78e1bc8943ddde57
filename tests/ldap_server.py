"""A real OpenLDAP server (Debian's slapd) on loopback with a handful of users, for the LDAP tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SUFFIX = "dc=example,dc=com"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "ldap-admin-secret"
PEOPLE = f"ou=people,{SUFFIX}"
# uid, display name (gecos), password
USERS = [
    ("alice", "Alice Admin", "alice-pw"),
    ("bob", "Bob Builder", "bob-pw"),
    ("carol", "Carol Chemist", "carol-pw"),
    ("dave", "Dave Physicist", "dave-pw"),
]


@dataclass
class LdapServer:
    url: str
    process: subprocess.Popen
    root: Path

    def add_user(self, uid: str, name: str, password: str) -> None:
        _ldif_apply(self, _user_ldif(uid, name, password, 5000 + len(uid)), "ldapadd")

    def remove_user(self, uid: str) -> None:
        subprocess.run(["ldapdelete", "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD,
                        f"uid={uid},{PEOPLE}"], check=True, capture_output=True)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def available() -> bool:
    return shutil.which("slapd") is not None or Path("/usr/sbin/slapd").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user_ldif(uid: str, name: str, password: str, number: int) -> str:
    return (f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
            f"uid: {uid}\ncn: {name}\nsn: {name.split()[-1]}\ngecos: {name}\nuidNumber: {number}\n"
            f"gidNumber: 100\nhomeDirectory: /home/{uid}\nuserPassword: {password}\n\n")


def _ldif_apply(server: LdapServer, ldif: str, tool: str) -> None:
    subprocess.run([tool, "-x", "-H", server.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD], input=ldif, text=True,
                   check=True, capture_output=True)


def start(root: Path) -> LdapServer:
    slapd = shutil.which("slapd") or "/usr/sbin/slapd"
    (root / "db").mkdir(parents=True)
    conf = root / "slapd.conf"
    conf.write_text(
        "".join(f"include /etc/ldap/schema/{s}.schema\n" for s in ("core", "cosine", "nis", "inetorgperson"))
        + f"modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {root}/slapd.pid\n"
        + f'database mdb\nmaxsize 10485760\nsuffix "{SUFFIX}"\nrootdn "{ADMIN_DN}"\nrootpw {ADMIN_PASSWORD}\n'
        + f"directory {root}/db\n"
    )
    ldif = (f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example HPC\n\n"
            f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
            + "".join(_user_ldif(uid, name, pw, 5000 + i) for i, (uid, name, pw) in enumerate(USERS)))
    (root / "data.ldif").write_text(ldif)
    subprocess.run([shutil.which("slapadd") or "/usr/sbin/slapadd", "-f", str(conf), "-l", str(root / "data.ldif")],
                   check=True, capture_output=True)
    port = _free_port()
    url = f"ldap://127.0.0.1:{port}"
    process = subprocess.Popen([slapd, "-f", str(conf), "-h", url + "/", "-d", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return LdapServer(url, process, root)
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"slapd exited: {process.stderr.read().decode(errors='replace')}") from None
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("slapd did not start listening within 20 s")
