"""A private Dovecot IMAP server on loopback for the IMAP intake tests.

Own config, passwd-file, maildirs and run directory under one temp dir; plain-text
login on a loopback, non-TLS port (acceptable for a test; production uses 993).
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.mta_postfix import free_port

USER = "security@example.org"
PASSWORD = "s3cret-imap"  # a throwaway test account

CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_location = maildir:{root}/mail/%n
mail_uid = {mail_uid}
mail_gid = {mail_gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = home={root}/home/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
namespace inbox {{
  inbox = yes
  mailbox Done {{
    auto = create
  }}
}}
"""


def unavailable() -> str | None:
    if shutil.which("dovecot") is None:
        return "dovecot not installed (run .ci/install-mail-tools)"
    if os.geteuid() != 0:
        return "a private Dovecot instance needs root"
    return None


@dataclass
class Dovecot:
    root: Path
    port: int

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    @classmethod
    def create(cls) -> Dovecot:
        root = Path(tempfile.mkdtemp(prefix="lbdv", dir="/tmp"))
        root.chmod(0o755)
        dv = cls(root, free_port())
        nobody = pwd.getpwnam("nobody")
        for sub in ("run", "state", "mail", "home"):
            (root / sub).mkdir()
        for sub in ("mail", "home"):
            os.chown(root / sub, nobody.pw_uid, nobody.pw_gid)
        (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        dv.conf.write_text(CONF.format(
            root=root, port=dv.port, login_user="dovenull", internal_user="dovecot",
            mail_uid=nobody.pw_uid, mail_gid=nobody.pw_gid))
        return dv

    def start(self) -> None:
        # The master daemonizes; its children keep inherited pipes, so use no pipes.
        with (self.root / "start.err").open("wb") as err:
            code = subprocess.call(["dovecot", "-c", str(self.conf)],
                                   stdout=subprocess.DEVNULL, stderr=err, timeout=30)
        if code != 0:
            raise RuntimeError(f"dovecot failed: {(self.root / 'start.err').read_text()}"
                               f"{self.log()}")
        deadline = time.monotonic() + 20
        while True:  # ready when the listener answers
            try:
                imaplib.IMAP4("127.0.0.1", self.port, timeout=2).logout()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kick(self) -> None:
        """Disconnect every session (the server says BYE), as a restarting server does."""
        subprocess.run(["doveadm", "-c", str(self.conf), "kick", USER], capture_output=True,
                       check=False, timeout=30)

    def stop(self) -> None:
        self.kick()
        pid_file = self.root / "run" / "master.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        pid_file.unlink(missing_ok=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self) -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        c.login(USER, PASSWORD)
        return c

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        c = self.client()
        try:
            typ, data = c.append(folder, None, None, raw)
            assert typ == "OK", data
        finally:
            c.logout()

    def uids(self, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
        c = self.client()
        try:
            c.select(folder)
            typ, data = c.uid("SEARCH", criteria)
            assert typ == "OK", data
            return [int(x) for x in data[0].split()]
        finally:
            c.logout()

    def flags(self, uid: int, folder: str = "INBOX") -> str:
        c = self.client()
        try:
            c.select(folder)
            typ, data = c.uid("FETCH", str(uid), "(FLAGS)")
            assert typ == "OK", data
            return str(data[0])
        finally:
            c.logout()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
