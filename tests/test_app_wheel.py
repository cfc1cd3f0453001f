"""`pip install dyntools` then `dyntools app FOLDER`: from a wheel built from the repository and
installed (not editable) into a fresh virtual environment, the command serves the app.

The fresh environment takes its dependencies (torch, streamlit, ...) from the development
environment through a .pth line, so that nothing is downloaded; dyntools itself comes only from
the wheel (the development install is editable, and an editable finder in a directory named by
a .pth line is not run).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from dyntools.app import PAGES

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh virtual environment with dyntools installed from its wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp / "dist"), str(REPO)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp / "dist").glob("dyntools-*.whl")
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    site = Path(
        subprocess.run(
            [str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [str(env / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    return env / "bin"


def test_the_wheel_holds_the_app_and_its_pages(installed: Path) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c", "import dyntools.app as a; print(a.__file__)"],
        check=True, capture_output=True, text=True, cwd="/",
    ).stdout.strip()  # fmt: skip
    app = Path(where).parent
    assert not app.is_relative_to(REPO), "dyntools came from the repository, not the wheel"
    for page in PAGES:
        assert (app / "page_scripts" / f"{page.script}.py").is_file(), page.script
    assert (app / "main.py").is_file()
    helped = subprocess.run(
        [str(installed / "dyntools"), "app", "--help"], capture_output=True, text=True, cwd="/"
    )
    assert helped.returncode == 0 and "--port" in helped.stdout and "--host" in helped.stdout


def test_dyntools_app_serves_from_the_installed_package(installed: Path, tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    port = _free_port()
    server = subprocess.Popen(
        [str(installed / "dyntools"), "app", str(folder), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/",
        start_new_session=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert f"open http://localhost:{port}" in first
        deadline = time.monotonic() + 60
        health = ""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as reply:
                    health = reply.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert health == "ok", f"no answer on port {port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
