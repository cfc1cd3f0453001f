"""``dyntools app FOLDER [--port N] [--host ADDRESS]``: serve the app, as ``tensorboard --logdir``
serves TensorBoard.

The app's router and pages ship inside the package (``dyntools/app``), so an installed dyntools
serves them; Streamlit runs in a child process (the CLI imports no streamlit). It binds to
127.0.0.1 unless told otherwise: a checkpoint folder is not something to publish by accident.
"""

from __future__ import annotations

import argparse
import ipaddress
import subprocess
import sys
from pathlib import Path
from typing import Any

import dyntools

MAIN_SCRIPT = Path(dyntools.__file__).resolve().parent / "app" / "main.py"
DEFAULT_PORT = 8501


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "app",
        help="serve the app on a folder of runs (like tensorboard --logdir)",
        description="Serve the dyntools app on FOLDER and print where to open it. It keeps "
        "running until Ctrl+C.",
    )
    parser.add_argument(
        "folder", type=Path, nargs="?", default=Path("."), metavar="FOLDER",
        help="the folder of runs to open (default: the current folder)",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 serves "
        "every network the machine is on)",
    )
    parser.set_defaults(func=handler)


def command(folder: Path, port: int, host: str) -> list[str]:
    """The Streamlit command that serves the app."""
    return [
        sys.executable, "-m", "streamlit", "run", str(MAIN_SCRIPT),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--", "--folder", str(folder),
    ]  # fmt: skip


def handler(args: argparse.Namespace) -> int:
    folder: Path = args.folder.expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"{args.folder} is not a folder: give the folder of your runs")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    shown = "localhost" if args.host in ("127.0.0.1", "::1") else args.host
    print(
        f"dyntools app: serving {folder}; open http://{shown}:{args.port} (Ctrl+C stops it)",
        flush=True,
    )
    if not _loopback(args.host):
        print(
            f"dyntools app: listening on {args.host}: anyone who can reach this machine can "
            "read the folder's metrics",
            file=sys.stderr,
            flush=True,
        )
    return subprocess.call(command(folder, args.port, args.host))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
