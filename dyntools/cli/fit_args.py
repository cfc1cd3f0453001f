"""The options of ``dyntools fit`` and their translation into a ``FitConfig``.

The command module (which reads the store) calls ``add_fit_arguments`` on its parser and
``fit_config_from_args`` on the parsed arguments.
"""

from __future__ import annotations

import argparse

from dyntools.checkpoints.records import AXIS_CHOICES
from dyntools.cli.selection_args import add_network_arguments, network_selection_from_args
from dyntools.hmm.analysis import FitConfig
from dyntools.hmm.features import NORMALIZATIONS
from dyntools.hmm.hmmlearn_backend import COVARIANCE_TYPES
from dyntools.hmm.model_selection import CRITERIA
from dyntools.hmm.stability import DEFAULT_RESAMPLES
from dyntools.metrics.feature import Feature


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Every fit option (FOLDER is the command's own)."""
    defaults = FitConfig()
    parser.add_argument(
        "--features",
        nargs="+",
        metavar="HOOK/METRIC",
        default=[],
        help="features as hook point/metric, e.g. blocks.0.attn/l2, or a network-wide metric "
        "such as l2 (default: the paper's 14 features)",
    )
    parser.add_argument(
        "--paper-features", action="store_true", help="add the 14 features of the paper"
    )
    parser.add_argument(
        "--scalars", nargs="+", default=[], metavar="NAME", help="training scalars as features"
    )
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--runs", nargs="+", metavar="RUN", help="runs to fit (default: all)")
    runs.add_argument(
        "--task",
        metavar="TASK",
        help="fit the runs of one task, e.g. every seed of a hub suite (EleutherAI/pythia-160m)",
    )
    parser.add_argument("--max-states", type=int, default=defaults.max_states, metavar="K")
    parser.add_argument(
        "--states", type=int, metavar="N", help="use N states instead of the lowest BIC"
    )
    parser.add_argument("--restarts", type=int, default=defaults.restarts, metavar="R")
    parser.add_argument("--covariance", choices=COVARIANCE_TYPES, default=defaults.covariance_type)
    parser.add_argument(
        "--min-covar",
        type=float,
        default=defaults.min_covar,
        help="added to every covariance's diagonal in each EM step, relative to the features' "
        "variance (keeps full and tied covariances positive-definite)",
    )
    parser.add_argument("--normalize", choices=NORMALIZATIONS, default=defaults.normalize)
    parser.add_argument("--seed", type=int, default=defaults.seed, metavar="S")
    parser.add_argument("--n-iter", type=int, default=defaults.n_iter, help="EM iteration budget")
    parser.add_argument(
        "--tol", type=float, default=defaults.tol, help="least log-likelihood gain per time step"
    )
    parser.add_argument(
        "--heldout", nargs="+", default=[], metavar="RUN", help="runs scored, not fitted"
    )
    parser.add_argument(
        "--heldout-checkpoints",
        type=float,
        default=defaults.heldout_checkpoints,
        metavar="FRACTION",
        help="hold out this fraction of each run's checkpoints at random (seeded) and score "
        "them, as EleutherAI's training maps do with 0.2",
    )
    parser.add_argument(
        "--criterion",
        choices=CRITERIA,
        default=defaults.criterion,
        help="choose n by the lowest BIC, or by the highest held-out log-likelihood per step "
        "(needs --heldout or --heldout-checkpoints)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=defaults.convergence_threshold,
        help="validation accuracy that counts as converged",
    )
    parser.add_argument(
        "--axis",
        choices=AXIS_CHOICES,
        default=defaults.axis,
        help="time axis of state durations and convergence: step, epoch (every checkpoint "
        "must state one), or auto: epoch where every checkpoint states one, else step",
    )
    parser.add_argument(
        "--stability",
        type=int,
        default=DEFAULT_RESAMPLES,
        metavar="N",
        help="bootstrap the runs N times to tell how stable the number of states and the "
        f"labels are (default {DEFAULT_RESAMPLES}; 0 skips it)",
    )
    parser.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="STATE=NAME",
        help="name a state of the fit (e.g. 2=memorizing; repeat for several), stored with it",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_network_arguments(parser)


def fit_config_from_args(args: argparse.Namespace, data_fingerprint: str = "") -> FitConfig:
    """The ``FitConfig`` the parsed options describe."""
    return FitConfig(
        runs=tuple(args.runs) if args.runs else None,
        features=tuple(Feature.parse(f) for f in args.features),
        paper_features=bool(args.paper_features),
        scalar_features=tuple(args.scalars),
        normalize=args.normalize,
        max_states=args.max_states,
        n_states=args.states,
        restarts=args.restarts,
        covariance_type=args.covariance,
        min_covar=args.min_covar,
        seed=args.seed,
        n_iter=args.n_iter,
        tol=args.tol,
        heldout_runs=tuple(args.heldout),
        heldout_checkpoints=args.heldout_checkpoints,
        criterion=args.criterion,
        convergence_threshold=args.threshold,
        network_selection=network_selection_from_args(args),
        axis=args.axis,
        data_fingerprint=data_fingerprint,
    )


def state_names_from_args(args: argparse.Namespace) -> dict[int, str]:
    """``--name 2=memorizing`` as {2: "memorizing"}; anything else is a clear error."""
    names: dict[int, str] = {}
    for text in args.name:
        state, sep, name = text.partition("=")
        if not sep or not (state.strip().isascii() and state.strip().isdigit()):
            raise ValueError(
                f"--name takes STATE=NAME with a state number, e.g. 2=memorizing; got {text!r}"
            )
        names[int(state)] = name
    return names
