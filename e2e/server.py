"""``streamlit run streamlit_app.py`` as a subprocess on a free localhost port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = REPO_ROOT / "streamlit_app.py"
# What `dyntools app` serves: the router inside the package.
PACKAGED = REPO_ROOT / "dyntools" / "app" / "main.py"
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class AppServer:
    """A running app: where to reach it and the process group to end."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it for a bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def app_command(folder: Path, port: int, *, bind: bool = True, script: Path = APP) -> list[str]:
    """The command line a user would type, with the port and folder filled in.

    ``bind=False`` leaves the address to .streamlit/config.toml, as a plain ``streamlit run``;
    ``script``: the repository's entry, or the package's (``PACKAGED``, what ``dyntools app``
    serves).
    """
    address = ["--server.address", HOST] if bind else []
    return [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.headless", "true",
        *address,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        # No "Deploy" button in the screenshots (a person running locally has no use for it).
        "--client.toolbarMode", "viewer",
        # The test never edits sources; watching them only costs CPU on a shared machine.
        "--server.fileWatcherType", "none",
        "--", "--folder", str(folder),
    ]  # fmt: skip


def start_app(folder: Path, log: Path, *, bind: bool = True, script: Path = APP) -> AppServer:
    """Start the app on a free port and wait until its health endpoint answers."""
    log.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with log.open("wb") as out:
        # A new session (process group) so stop_app can end streamlit and anything it started.
        process = subprocess.Popen(
            app_command(folder, port, bind=bind, script=script),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    server = AppServer(f"http://{HOST}:{port}", port, process, log)
    try:
        wait_healthy(server)
    except BaseException:
        stop_app(server)
        raise
    return server


def wait_healthy(server: AppServer, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"streamlit exited with status {server.process.returncode} before serving "
                f"{server.url}; its log ({server.log}) ends:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(
        f"streamlit did not answer {server.url}/_stcore/health within {timeout_s:.0f} s; "
        f"its log ({server.log}) ends:\n{server.log_tail()}"
    )


def stop_app(server: AppServer) -> None:
    """End the app's process group: politely, then for sure."""
    if server.process.poll() is not None:
        return
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def running_app(
    folder: Path, log: Path, *, bind: bool = True, script: Path = APP
) -> Iterator[AppServer]:
    """The app serving ``folder`` for the duration of the block, stopped even on failure."""
    server = start_app(folder, log, bind=bind, script=script)
    try:
        yield server
    finally:
        stop_app(server)


def listening_addresses(port: int) -> set[str]:
    """The IPv4/IPv6 addresses a TCP socket listens on at ``port`` (read from /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(_decode_address(address))
    return found


def _decode_address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc/net stores addresses as 32-bit words in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words)
