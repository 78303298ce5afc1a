"""A private Postfix instance on loopback for end-to-end tests.

Its own config and queue directories and its own smtpd port: the system's Postfix
(if any) is never touched. Needs root (Postfix's master runs as root) and the
postfix package; callers skip with the reason from `unavailable()`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def unavailable() -> str | None:
    if shutil.which("postfix") is None or shutil.which("swaks") is None:
        return "postfix or swaks not installed (run .ci/install-mail-tools)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its master runs as root)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Postfix:
    root: Path
    port: int

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "MAIL_CONFIG": str(self.config_dir)}

    @classmethod
    def create(cls, maps_dir: Path) -> Postfix:
        # Short path: Postfix's unix sockets live under the queue directory (108-byte limit).
        root = Path(tempfile.mkdtemp(prefix="lbpf", dir="/tmp"))
        root.chmod(0o755)
        pf = cls(root, free_port())
        etc = pf.config_dir
        etc.mkdir()
        (root / "queue").mkdir(mode=0o755)
        (root / "data").mkdir()
        shutil.chown(root / "data", "postfix", "postfix")
        (etc / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{pf.port}"))
        (etc / "main.cf").write_text("\n".join([
            "compatibility_level = 3.6",
            f"queue_directory = {root / 'queue'}",
            f"data_directory = {root / 'data'}",
            f"maillog_file = {root / 'maillog'}",
            "maillog_file_prefixes = /tmp",
            "myhostname = mx.test.example",
            "mydomain = test.example",
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "mydestination =",
            "local_recipient_maps =",
            "alias_maps =",
            "alias_database =",
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
            "smtp_dns_support_level = disabled",
            "disable_dns_lookups = yes",
            # Retry deferred mail promptly when flushed; tests flush with postqueue -f.
            "queue_run_delay = 1s",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 2s",
            "recipient_delimiter = +",
            "owner_request_special = no",
            f"transport_maps = hash:{maps_dir}/postfix_lmtp",
            f"relay_domains = hash:{maps_dir}/postfix_domains",
            f"relay_recipient_maps = hash:{maps_dir}/postfix_lmtp",
            "",
        ]))
        return pf

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)

    def start(self) -> None:
        # "postfix start" runs "postfix check", which creates the queue subdirectories.
        done = self.run("postfix", "-c", str(self.config_dir), "start")
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed: {done.stdout}{done.stderr}"
                               f"{self.log()}")

    def stop(self) -> None:
        self.run("postfix", "-c", str(self.config_dir), "stop")

    def flush(self) -> None:
        self.run("postqueue", "-c", str(self.config_dir), "-f")

    def queue(self) -> str:
        return self.run("postqueue", "-c", str(self.config_dir), "-p").stdout

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def swaks(self, sender: str, rcpt: str, data: str) -> subprocess.CompletedProcess[str]:
        return self.run("swaks", "--server", f"127.0.0.1:{self.port}", "--from", sender,
                        "--to", rcpt, "--data", data, "--timeout", "20")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
