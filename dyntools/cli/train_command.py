"""``dyntools train TASK --seed S --out DIR``: train a sample task and write a run folder."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dyntools.train import TASKS, get_task, parse_schedule, train


def _task_list() -> str:
    lines = ["tasks (presets, default first):"]
    for spec in TASKS.values():
        presets = [spec.default_preset, *(p for p in spec.presets if p != spec.default_preset)]
        lines.append(f"  {spec.name:<18} {spec.summary} [{', '.join(presets)}]")
    return "\n".join(lines)


def add_parser(subparsers: Any) -> None:
    """Register ``train`` on the ``dyntools`` sub-command parser."""
    parser = subparsers.add_parser(
        "train",
        help="train a sample task and write checkpoints",
        description="Train a sample task and write a dyntools run folder (run.json, "
        "epoch_NNNNN.safetensors, probe.safetensors). Progress goes to stderr.",
        epilog=_task_list(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", nargs="?", help="task name (see the list below)")
    parser.add_argument("--list", action="store_true", help="list the tasks and presets")
    parser.add_argument("--seed", type=int, help="random seed (model init, data split, order)")
    parser.add_argument("--out", help="run folder to create")
    parser.add_argument("--preset", help="preset of the task (default: its first)")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--weight-decay", type=float, help="weight decay")
    parser.add_argument("--batch-size", type=int, help="mini-batch size")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument(
        "--checkpoint-every", type=int, metavar="N", help="save every N epochs (1 = every epoch)"
    )
    schedule.add_argument(
        "--checkpoint-log", type=int, metavar="K", help="save about K log-spaced epochs"
    )
    parser.add_argument(
        "--layernorm", action="store_true", default=None, help="modular-addition: add LayerNorm"
    )
    parser.add_argument(
        "--no-batchnorm",
        dest="batchnorm",
        action="store_false",
        default=None,
        help="digits-resnet: no BatchNorm",
    )
    parser.add_argument(
        "--no-residual",
        dest="residual",
        action="store_false",
        default=None,
        help="digits-resnet: no residual connections",
    )
    parser.add_argument(
        "--step-stats",
        action="store_true",
        help="also record per-step activation statistics (mean, std, dead fraction, histogram "
        "of each activation function's output) into OUT/step_stats/",
    )
    parser.add_argument(
        "--step-stats-every",
        type=int,
        metavar="N",
        help="record them every N optimizer steps (default 1; implies --step-stats)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=handler)


_OVERRIDES = ("epochs", "lr", "weight_decay", "batch_size", "layernorm", "batchnorm", "residual")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {key: getattr(args, key) for key in _OVERRIDES if getattr(args, key) is not None}
    if args.checkpoint_every is not None:
        overrides["checkpoints"] = f"every {args.checkpoint_every}"
    elif args.checkpoint_log is not None:
        overrides["checkpoints"] = f"log {args.checkpoint_log}"
    if "checkpoints" in overrides:
        parse_schedule(overrides["checkpoints"])  # a bad N is reported before anything runs
    return overrides


def handler(args: argparse.Namespace) -> int:
    """Run ``dyntools train``; user errors raise ValueError/OSError/LookupError."""
    if args.list:
        print(_task_list())
        return 0
    if args.task is None:
        raise ValueError(f"name a task: {', '.join(TASKS)} (dyntools train --list)")
    task = get_task(args.task)
    if args.seed is None or args.out is None:
        raise ValueError(
            "--seed and --out are required, e.g. "
            f"dyntools train {task.name} --seed 0 --out runs/{task.name}/seed0"
        )
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    step_stats = args.step_stats_every
    if step_stats is not None and step_stats < 1:
        raise ValueError(f"--step-stats-every must be >= 1, got {step_stats}")
    if args.step_stats and step_stats is None:
        step_stats = 1

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        result = train(
            task,
            args.out,
            seed=args.seed,
            preset=args.preset,
            overrides=_overrides(args),
            overwrite=args.overwrite,
            progress=None if args.quiet else report,
            step_stats=step_stats,
        )
    except FileExistsError:
        raise FileExistsError(
            f"{args.out} already holds a run: choose another --out, or add --overwrite to "
            "replace it"
        ) from None
    if not args.quiet:
        last = result.records[-1]
        stats = " and per-step activation statistics" if step_stats is not None else ""
        report(
            f"wrote {len(result.records)} checkpoints{stats} to {result.path} in "
            f"{result.seconds:.1f}s (final train_acc {last.train_acc:.3f}, "
            f"val_acc {last.val_acc:.3f})"
        )
    return 0
