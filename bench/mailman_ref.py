"""Reference figures: GNU Mailman 3 (core) doing the same fan-out as bench/fanout.py.

Posts of ~4 KB go over LMTP to Mailman's LMTP runner (concurrency 10, one reused
connection per client); Mailman's runners (in -> pipeline -> out) deliver them over
SMTP to the recording sink of tests/sink.py, running in this process. Figures:
LMTP acceptance rate, and end to end posts/s = N / (first 250 -> last delivery).

    python3 bench/mailman_ref.py [--posts 500] [--members 20] [--concurrency 10]
                                 [--venv DIR] [--mailman-version 3.3.10] [--keep]

Everything is set up here: a virtual environment with `pip install mailman` (in a
temporary directory unless --venv names one to create or reuse), a mailman.cfg with
its own var_dir (SQLite), the list and its members, then `mailman start` / `stop`.
`run_mailman(posts, members, concurrency)` can be called from another script.
See bench/mailman_setup.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Sink, load  # also puts the repository root on sys.path

MAILMAN_VERSION = "3.3.10"
LIST = "discuss@lists.example.org"

# Run inside Mailman's own interpreter by `mailman shell -r mmbench_setup.setup`.
SETUP_MODULE = textwrap.dedent('''
    from zope.component import getUtility
    from mailman.app.lifecycle import create_list
    from mailman.config import config
    from mailman.interfaces.action import Action
    from mailman.interfaces.domain import IDomainManager
    from mailman.interfaces.archiver import ArchivePolicy
    from mailman.interfaces.mailinglist import DMARCMitigateAction, Personalization
    from mailman.interfaces.member import MemberRole
    from mailman.interfaces.usermanager import IUserManager
    from mailman.utilities.datetime import now


    def setup(listname, count):
        getUtility(IDomainManager).add(listname.split('@')[1])
        mlist = create_list(listname)
        mlist.send_welcome_message = False
        mlist.send_goodbye_message = False
        mlist.admin_immed_notify = False
        mlist.default_member_action = Action.accept
        mlist.archive_policy = ArchivePolicy.never
        mlist.digests_enabled = False
        mlist.dmarc_mitigate_action = DMARCMitigateAction.no_mitigation
        mlist.personalize = Personalization.none
        mlist.max_message_size = 0
        users = getUtility(IUserManager)
        for i in range(int(count)):
            address = users.create_address(
                'security@vendor%04d.example' % i, 'Vendor %04d' % i)
            address.verified_on = now()
            member = mlist.subscribe(address, MemberRole.member)
            member.moderation_action = Action.accept
        config.db.commit()
        print('members', mlist.members.member_count)
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_cfg(var: Path, lmtp_port: int, smtp_port: int) -> Path:
    cfg = var.parent / "mailman.cfg"
    cfg.write_text(textwrap.dedent(f"""\
        [mailman]
        site_owner: postmaster@lists.example.org
        layout: bench

        [paths.bench]
        var_dir: {var}

        [database]
        class: mailman.database.sqlite.SQLiteDatabase
        url: sqlite:///{var}/data/mailman.db

        [mta]
        # Posts arrive by LMTP straight from the benchmark: no MTA alias files.
        incoming: mailman.mta.null.NullMTA
        outgoing: mailman.mta.deliver.deliver
        lmtp_host: 127.0.0.1
        lmtp_port: {lmtp_port}
        smtp_host: 127.0.0.1
        smtp_port: {smtp_port}
        # Up to 100 recipients per SMTP transaction, like listbot's bench config.
        max_recipients: 100
        verp_personalized_deliveries: no
        verp_delivery_interval: 0
        verp_probes: no

        [ARC]
        enabled: no

        [archiver.mhonarc]
        enable: no
        [archiver.mail_archive]
        enable: no
        [archiver.prototype]
        enable: no

        # Not needed for posting: the REST API (gunicorn), archives, digests, NNTP.
        [runner.rest]
        start: no
        [runner.archive]
        start: no
        [runner.digest]
        start: no
        [runner.nntp]
        start: no
        """))
    return cfg


class TimedSink(Sink):
    """The test sink, stamping the time each transaction was recorded."""

    def __init__(self, wanted: set[str]) -> None:
        super().__init__()
        self.wanted = wanted
        self.count = 0
        self.last = 0.0

    def _record(self, env: Any) -> None:
        super()._record(env)
        self.count += sum(1 for r in env.rcpt_tos if r.lower() in self.wanted)
        self.last = time.perf_counter()

    async def wait_members(self, count: int, limit_s: float) -> float:
        deadline = time.perf_counter() + limit_s
        while self.count < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{self.count} of {count} deliveries after {limit_s} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)
        return self.last


async def sh(*argv: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {proc.returncode}:\n{text}")
    return text


async def ensure_venv(venv: Path, version: str) -> str:
    py = venv / "bin" / "python"
    if not py.exists():
        await sh(sys.executable, "-m", "venv", str(venv))
    probe = "import mailman.version as v; print(v.VERSION)"
    have = (await sh(str(py), "-c", probe, check=False)).strip()
    if have != version:
        await sh(str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 f"mailman=={version}")
        have = (await sh(str(py), "-c", probe)).strip()
    return have


def _tail(log: Path) -> str:
    return log.read_text()[-3000:] if log.exists() else "(no log)"


async def wait_port(port: int, limit_s: float, log: Path) -> None:
    deadline = time.perf_counter() + limit_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.perf_counter() > deadline:
                raise TimeoutError(
                    f"Mailman's LMTP runner not up on {port}:\n{_tail(log)}") from None
            await asyncio.sleep(0.2)


def _master_pid(var: Path) -> int:
    try:
        return int((var / "master.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


async def stop_master(mailman: list[str], env: dict[str, str], var: Path) -> None:
    """`mailman stop`, then wait for the master (a daemon, not our child) to exit."""
    pid = _master_pid(var)
    await sh(*mailman, "stop", env=env, check=False)
    for _ in range(300):
        if not pid or not _alive(pid):
            return
        await asyncio.sleep(0.1)
    print(f"  mailman master {pid} still up 30 s after `mailman stop`: killing it")
    _kill_tree(pid)


def _kill_tree(pid: int) -> None:
    for child in Path("/proc").glob("[0-9]*"):  # its runners first
        try:
            if int((child / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                os.kill(int(child.name), 9)
        except (OSError, ValueError, IndexError):
            pass
    with contextlib.suppress(OSError):
        os.kill(pid, 9)


async def run_mailman(posts: int = 500, members: int = 20, concurrency: int = 10, *,
                      venv: str | os.PathLike[str] | None = None,
                      version: str = MAILMAN_VERSION, keep: bool = False,
                      limit_s: float = 240.0) -> dict[str, Any]:
    """Set up Mailman, push `posts` posts to a list of `members`; return the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="mailman-ref-"))
    try:
        venv_dir = Path(venv) if venv else tmp / "venv"
        t0 = time.perf_counter()
        have = await ensure_venv(venv_dir, version)
        install_s = time.perf_counter() - t0

        addresses = [f"security@vendor{i:04d}.example" for i in range(members)]
        sink = TimedSink({a.lower() for a in addresses})
        await sink.start()
        var = tmp / "var"
        var.mkdir()
        lmtp_port = free_port()
        cfg = write_cfg(var, lmtp_port, sink.port)
        (tmp / "mmbench_setup.py").write_text(SETUP_MODULE)
        env = {**os.environ, "MAILMAN_CONFIG_FILE": str(cfg), "PYTHONPATH": str(tmp)}
        mailman = [str(venv_dir / "bin" / "mailman"), "-C", str(cfg)]
        if os.geteuid() == 0:
            mailman.append("--run-as-root")

        t1 = time.perf_counter()
        await sh(*mailman, "shell", "-r", "mmbench_setup.setup", LIST, str(members),
                 env=env)
        started = False
        try:
            started = True
            # The master daemonizes and keeps its stdio: give it a file, not a pipe.
            with (tmp / "start.log").open("wb") as out:
                proc = await asyncio.create_subprocess_exec(
                    *mailman, "start", env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=out, stderr=out)
                if await proc.wait() != 0:
                    raise RuntimeError((tmp / "start.log").read_text())
            await wait_port(lmtp_port, 60, var / "logs" / "mailman.log")
            startup_s = time.perf_counter() - t1
            expected = posts * members
            accept_s, first = await load(lmtp_port, addresses[0], LIST, posts, concurrency)
            last = await sink.wait_members(expected, limit_s)
        finally:
            if started:
                await stop_master(mailman, env, var)
            await sink.stop()
        logs = var / "logs"
        if keep:
            print(f"  kept {tmp}")
        total = last - first
        return {"version": have, "posts": posts, "members": members,
                "concurrency": concurrency, "install_s": install_s, "startup_s": startup_s,
                "accept_s": accept_s, "accept_per_s": posts / accept_s,
                "total_s": total, "posts_per_s": posts / total,
                "deliveries_per_s": expected / total,
                "transactions": len(sink.received),
                "errors": _count(logs / "error"), "shunted": _files(var / "queue" / "shunt"),
                "loadavg_1m": os.getloadavg()[0]}
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _files(path: Path) -> int:
    return len(list(path.iterdir())) if path.is_dir() else 0


async def main(args: argparse.Namespace) -> None:
    r = await run_mailman(args.posts, args.members, args.concurrency, venv=args.venv,
                          version=args.mailman_version, keep=args.keep)
    print(f"{r['posts']} posts x {r['members']} members (mailman {r['version']}, sqlite, "
          f"concurrency {r['concurrency']}): accepted in {r['accept_s']:.2f} s "
          f"({r['accept_per_s']:.0f} msgs/s over LMTP), last delivery "
          f"{r['total_s']:.2f} s after the first 250")
    print(f"  {r['posts_per_s']:.1f} posts/s end to end, {r['deliveries_per_s']:.0f} "
          f"deliveries/s, {r['transactions']} SMTP transactions at the sink "
          f"(error log lines {r['errors']}, shunted {r['shunted']})")
    print(f"  setup: venv ready in {r['install_s']:.0f} s, list and runners up in "
          f"{r['startup_s']:.0f} s; load average {r['loadavg_1m']:.1f} at the end "
          f"({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--venv", help="virtual environment to create or reuse")
    parser.add_argument("--mailman-version", default=MAILMAN_VERSION)
    parser.add_argument("--keep", action="store_true", help="keep var_dir and logs")
    asyncio.run(main(parser.parse_args()))
