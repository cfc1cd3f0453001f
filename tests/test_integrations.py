"""dyntools.integrations: the transformers Trainer and Lightning callbacks write run folders that
dyntools reads (run.json, checkpoints on the trainer's schedule, every N or log-spaced steps, the
logged scalars, the probe) and whose weights and activations compute; both examples of
docs/training.md run as written. The real libraries on tiny models, on the CPU, offline."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

from dyntools.capture import can_rebuild, checkpoint_model
from dyntools.checkpoints import Run, discover_runs, read_probe, read_run
from dyntools.checkpoints.step_stats import read_step_stats
from dyntools.integrations.recorder import StepSchedule, inputs_and_labels, probe_from_loader
from dyntools.models.hf import is_hf_config
from dyntools.pipeline import ComputeOptions, compute
from dyntools.pipeline.runner import rebuilt_model
from dyntools.store import Store, locate_db

transformers = pytest.importorskip("transformers")
L = pytest.importorskip("lightning")

from dyntools.integrations import hf as hf_integration  # noqa: E402
from dyntools.integrations import lightning as lightning_integration  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "training.md"

# Lightning's advice for real runs (more data loader workers, a logger, few batches per log),
# which tiny CPU runs cannot follow.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*number of training batches.*:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\).*:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\).*:FutureWarning"),
]


def doc_example(marker: str) -> str:
    """The python block after ``<!-- example: MARKER -->`` in docs/training.md."""
    after = DOC.read_text(encoding="utf-8").split(f"<!-- example: {marker} -->", 1)[1]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match is not None, f"no python block after the {marker} marker"
    return match.group(1)


def run_example(marker: str, folder: Path) -> dict[str, Any]:
    """Run a docs example as written, in ``folder``; its names afterwards."""
    namespace: dict[str, Any] = {"__name__": "__example__"}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        exec(compile(doc_example(marker), str(DOC), "exec"), namespace)
    return namespace


def steps(run: Run) -> list[int]:
    return [ref.step for ref in run.checkpoints]


def computes_cleanly(folder: Path, factory: str | None = None) -> pl.DataFrame:
    """Weights and activations computed for every checkpoint, without failures."""
    summary = compute(folder, ComputeOptions(activations=True, workers=1, factory=factory))
    assert not summary.failed, summary.failed
    assert not summary.problems, summary.problems
    values = Store(locate_db(folder).path).read_metrics()
    assert set(values["kind"]) == {"weight", "activation"}
    return values


# --- transformers Trainer ---------------------------------------------------------------------


def neox_config(**overrides: Any) -> Any:
    settings = {
        "vocab_size": 64,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 32,
        **overrides,
    }
    return transformers.GPTNeoXConfig(**settings)


def token_data() -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    tokens = torch.randint(0, 64, (48, 12), generator=torch.Generator().manual_seed(1))
    rows = [{"input_ids": t, "labels": t} for t in tokens]
    return rows[:32], rows[32:]


def train_neox(
    output: Path, callback: Any, *, evaluate: bool, dropout: float = 0.0, max_steps: int = 8
) -> Any:
    """A tiny GPT-NeoX trained for a few steps without saves of the Trainer's own."""
    torch.manual_seed(0)
    model = transformers.GPTNeoXForCausalLM(neox_config(hidden_dropout=dropout))
    train, evaluation = token_data()
    args = transformers.TrainingArguments(
        output_dir=str(output),
        max_steps=max_steps,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=2,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=4,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation if evaluate else None,
        callbacks=[callback] if callback is not None else [],
    )
    trainer.train()
    return trainer


@pytest.fixture(scope="module")
def hf_example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """docs/training.md's Trainer example, run as written: the run folder and its names."""
    folder = tmp_path_factory.mktemp("hf-example")
    return folder / "runs" / "my-hf-run", run_example("hf-callback", folder)


def test_hf_run_json_describes_model_optimizer_and_arguments(
    hf_example: tuple[Path, dict[str, Any]],
) -> None:
    path, _ = hf_example
    run = read_run(path)
    assert run.layout == "dyntools" and not run.problems
    config = run.config
    assert config["task"] == "custom" and config["seed"] == 42
    model = config["model"]
    assert model["name"] == "transformers"
    assert model["kwargs"]["model_type"] == "gpt_neox"
    assert model["kwargs"]["architectures"] == ["GPTNeoXForCausalLM"]
    assert model["kwargs"]["hidden_size"] == 16 and model["kwargs"]["num_attention_heads"] == 2
    assert config["model_class"].endswith(":GPTNeoXForCausalLM")
    assert config["optimizer"]["name"] == "AdamW" and config["optimizer"]["lr"] == 1e-3
    assert config["hyperparameters"]["max_steps"] == 8
    assert config["hyperparameters"]["save_steps"] == 4
    assert config["hyperparameters"]["hub_token"] == "<HUB_TOKEN>"  # never a real token
    assert "trainer's own save schedule" in config["checkpoint_schedule"]
    # a run.json entry dyntools rebuilds (not mistaken for a transformers config.json)
    assert can_rebuild(config) and not is_hf_config(config)


def test_hf_checkpoints_follow_the_trainers_saves_with_logged_scalars(
    hf_example: tuple[Path, dict[str, Any]],
) -> None:
    path, names = hf_example
    trainer = names["trainer"]
    found = discover_runs(path.parent)
    layouts = {run.layout: steps(run) for run in found.runs}
    # the Trainer's own checkpoints and the callback's: the same saves, plus the initialization
    assert layouts == {"dyntools": [0, 4, 8], "hf-trainer": [4, 8]}
    run = next(r for r in found.runs if r.layout == "dyntools")
    assert all(ref.epoch is None for ref in run.checkpoints)  # steps, never standing for epochs
    first, middle, last = run.checkpoints
    assert set(first.scalars) == {"learning_rate", "trainer_epoch"}  # nothing logged yet
    assert {"loss", "learning_rate", "grad_norm", "eval_loss", "trainer_epoch"} <= set(
        middle.scalars
    )
    assert middle.scalars["trainer_epoch"] == 1.0  # 32 samples, batches of 8: 4 steps an epoch
    logged = {(e["step"], k): v for e in trainer.state.log_history for k, v in e.items()}
    for ref in (middle, last):
        assert ref.scalars["eval_loss"] == pytest.approx(logged[(ref.step, "eval_loss")])
        assert ref.scalars["loss"] == pytest.approx(logged[(ref.step, "loss")])
    assert "train_runtime" not in last.scalars  # the end-of-training summary is no step's
    saved = load_file(str(last.path))
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(saved[name], tensor), name


def test_hf_probe_is_the_first_evaluation_samples(hf_example: tuple[Path, dict[str, Any]]) -> None:
    path, names = hf_example
    run = read_run(path)
    assert run.probe is not None
    probe = read_probe(run.probe)
    expected = torch.stack([row["input_ids"] for row in names["evaluation"]])
    assert torch.equal(probe.x, expected)
    assert torch.equal(probe.y, torch.stack([row["labels"] for row in names["evaluation"]]))


@pytest.mark.slow
def test_hf_run_computes_weights_and_activations(hf_example: tuple[Path, dict[str, Any]]) -> None:
    path, names = hf_example
    values = computes_cleanly(path)
    activations = values.filter(pl.col("kind") == "activation")
    assert set(activations["step"]) == {0, 4, 8}
    assert "gpt_neox.layers.0.mlp.act" in set(activations["hook_point"])
    # the rebuilt model holds the checkpoint's weights under the same names
    run = read_run(path)
    model = checkpoint_model(run.config, run.checkpoints[-1])
    assert type(model).__name__ == "GPTNeoXForCausalLM"
    for name, tensor in names["trainer"].model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


@pytest.mark.parametrize(
    ("every", "expected"), [(3, [0, 3, 6, 8]), ("log", [0, 1, 2, 4, 8])], ids=["every-3", "log"]
)
def test_hf_every_n_steps(tmp_path: Path, every: int | str, expected: list[int]) -> None:
    callback = hf_integration.DyntoolsCallback(tmp_path / "run", every_n_steps=every)
    train_neox(tmp_path / "out", callback, evaluate=every == "log")
    run = read_run(tmp_path / "run")
    assert steps(run) == expected
    assert "loss" in run.checkpoints[-1].scalars
    assert run.probe is not None
    x = read_probe(run.probe).x
    train, evaluation = token_data()
    # the evaluation data when the Trainer evaluates, else the training data at the end
    source = evaluation if every == "log" else train
    assert torch.equal(x, torch.stack([row["input_ids"] for row in source]))
    if every == "log":
        assert "eval_loss" in run.checkpoints[-2].scalars  # step 4: evaluated, then written


@pytest.mark.slow
def test_hf_callback_does_not_change_training(tmp_path: Path) -> None:
    # Dropout and a reshuffle after the evaluation where the probe is taken: any random number
    # the callback drew would change the trained weights.
    callback = hf_integration.DyntoolsCallback(tmp_path / "run", every_n_steps=2)
    with_callback = train_neox(tmp_path / "a", callback, evaluate=True, dropout=0.1)
    without = train_neox(tmp_path / "b", None, evaluate=True, dropout=0.1)
    for name, tensor in without.model.state_dict().items():
        assert torch.equal(with_callback.model.state_dict()[name], tensor), name


def test_hf_trainer_schedule_needs_the_trainer_to_save(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"save_strategy is 'no'.*every_n_steps"):
        train_neox(
            tmp_path / "out", hf_integration.DyntoolsCallback(tmp_path / "run"), evaluate=False
        )


# --- Lightning ----------------------------------------------------------------------------


class TinyLit(L.LightningModule):
    """The docs example's classifier, importable as a factory: ``test_integrations:TinyLit``."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def classification_data() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(96, 4, generator=torch.Generator().manual_seed(2))
    return x, (x[:, 0] > 0).long()


def fit_lightning(root: Path, callback: Any, *, checkpointing: bool = True) -> Any:
    x, y = classification_data()
    train = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(x[64:], y[64:]), batch_size=16)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PL_GLOBAL_SEED", raising=False)
        L.seed_everything(0, verbose=False)
        trainer = L.Trainer(
            max_epochs=3,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=checkpointing,
            default_root_dir=str(root),
            callbacks=[callback],
        )
        trainer.fit(TinyLit(), train, val)
    return trainer


@pytest.fixture(scope="module")
def lightning_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lightning")
    fit_lightning(root / "out", lightning_integration.DyntoolsCallback(root / "run"))
    return root / "run"


def test_lightning_run_json_describes_module_optimizer_and_trainer(lightning_run: Path) -> None:
    run = read_run(lightning_run)
    assert run.layout == "dyntools" and not run.problems
    config = run.config
    assert config["seed"] == 0  # from seed_everything
    assert config["model"] == {
        "name": "test_integrations:TinyLit",
        "kwargs": {"hidden": 16, "lr": 0.05},
    }
    assert config["hyperparameters"] == {"hidden": 16, "lr": 0.05}
    assert config["optimizer"]["name"] == "SGD" and config["optimizer"]["lr"] == 0.05
    assert config["trainer"]["max_epochs"] == 3


def test_lightning_checkpoints_follow_model_checkpoint_with_metrics(lightning_run: Path) -> None:
    run = read_run(lightning_run)
    # four batches an epoch; ModelCheckpoint saves at each epoch's end
    assert steps(run) == [0, 4, 8, 12]
    for ref in run.checkpoints[1:]:
        assert {"train_loss", "val_loss", "learning_rate", "trainer_epoch"} <= set(ref.scalars)
    assert [ref.scalars["trainer_epoch"] for ref in run.checkpoints] == [0, 0, 1, 2]
    assert run.probe is not None
    x, y = classification_data()
    probe = read_probe(run.probe)
    assert torch.equal(probe.x, x[64:]) and torch.equal(probe.y, y[64:])


@pytest.mark.slow
def test_lightning_run_computes_with_its_factory(lightning_run: Path) -> None:
    run = read_run(lightning_run)
    # dyntools never imports what a run folder names: without the factory, a clear reason
    problem = rebuilt_model(run, ComputeOptions()).problem
    assert problem is not None and "factory" in problem
    values = computes_cleanly(lightning_run, factory="test_integrations:TinyLit")
    activations = values.filter(pl.col("kind") == "activation")
    assert {"net.0", "net.1", "net.2"} <= set(activations["hook_point"])
    assert set(activations["step"]) == {0, 4, 8, 12}


@pytest.mark.parametrize(
    ("every", "expected"),
    [(5, [0, 5, 10, 12]), ("log", [0, 1, 2, 4, 8, 12])],
    ids=["every-5", "log"],
)
def test_lightning_every_n_steps(tmp_path: Path, every: int | str, expected: list[int]) -> None:
    callback = lightning_integration.DyntoolsCallback(tmp_path / "run", every_n_steps=every)
    fit_lightning(tmp_path / "out", callback, checkpointing=False)
    run = read_run(tmp_path / "run")
    assert steps(run) == expected
    assert "val_loss" in run.checkpoints[-1].scalars


def test_lightning_trainer_schedule_needs_checkpointing(tmp_path: Path) -> None:
    callback = lightning_integration.DyntoolsCallback(tmp_path / "run")
    with pytest.raises(ValueError, match=r"no checkpoint callback.*every_n_steps"):
        fit_lightning(tmp_path / "out", callback, checkpointing=False)


def test_lightning_docs_example_runs_as_written(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PL_GLOBAL_SEED", raising=False)
        run_example("lightning-callback", tmp_path)
    run = read_run(tmp_path / "runs" / "my-lightning-run")
    assert steps(run) == [0, 4, 8, 12] and run.probe is not None
    assert run.config["model"]["name"] == "__example__:Classifier"


# --- shared parts -------------------------------------------------------------------------


def test_schedules() -> None:
    due = StepSchedule("log").due
    assert [s for s in range(20) if due(s)] == [0, 1, 2, 4, 8, 16]
    assert [s for s in range(10) if StepSchedule(3).due(s)] == [0, 3, 6, 9]
    assert not any(StepSchedule(None).due(s) for s in range(10))
    for bad, error in ((0, ValueError), (True, TypeError), ("weekly", TypeError), (2.5, TypeError)):
        with pytest.raises(error, match="every_n_steps"):
            StepSchedule(bad)
    with pytest.raises(ValueError, match="probe_samples"):
        hf_integration.DyntoolsCallback("run", probe_samples=0)


def test_inputs_and_labels_of_batches() -> None:
    ids, labels = torch.zeros(3, 5, dtype=torch.long), torch.ones(3, 5, dtype=torch.long)
    x, y = inputs_and_labels({"input_ids": ids, "attention_mask": ids, "labels": labels}, 2)
    assert x.shape == (2, 5) and torch.equal(y, labels[:2])
    x, y = inputs_and_labels((torch.zeros(4, 3), torch.arange(4), "extra"), 512)
    assert x.shape == (4, 3) and y.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="needs an input tensor"):
        inputs_and_labels({"input_ids": ids}, 512)
    with pytest.raises(ValueError, match="cannot tell inputs from labels"):
        inputs_and_labels(torch.zeros(3), 512)


def test_the_probe_leaves_random_states_alone() -> None:
    def noisy_collate(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        # draws from every generator, as a masking collator would
        random.random(), np.random.rand(), torch.rand(1)
        return [torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])]

    data = TensorDataset(torch.arange(10.0).reshape(5, 2), torch.arange(5))
    loader = DataLoader(data, batch_size=2, shuffle=True, collate_fn=noisy_collate)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    _, y = probe_from_loader(loader, 3)
    assert y.tolist() == [0, 1, 2]  # the dataset's order, not a shuffled batch
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])


def test_importing_dyntools_imports_neither_library() -> None:
    script = (
        "import sys\n"
        "import dyntools, dyntools.integrations, dyntools.capture, dyntools.pipeline\n"
        "from dyntools.models import build_model\n"
        "build_model({'name': 'mlp', 'kwargs': {'in_features': 2, 'hidden': [2], 'out_features': 2}})\n"
        "print(sorted(m for m in ('transformers', 'lightning') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=DOC.parent.parent,
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_hf_callback_records_per_step_statistics(tmp_path: Path) -> None:
    """step_stats=True: one row per optimizer step (the Trainer's global_step) and module, from
    the training batches only (evaluation passes run in eval mode)."""
    callback = hf_integration.DyntoolsCallback(tmp_path / "run", every_n_steps=4, step_stats=True)
    train_neox(tmp_path / "out", callback, evaluate=True)
    stats = read_step_stats(tmp_path / "run")
    assert sorted(stats["step"].unique()) == list(range(8))  # steps 0..7 took a forward pass
    assert stats.group_by("step", "module").len()["len"].max() == 1
    assert stats["module"].str.ends_with("act").any()  # the MLPs' activation functions


def test_lightning_callback_records_per_step_statistics(tmp_path: Path) -> None:
    """The LightningModule's training_step may call a submodule: the steps still count."""
    callback = lightning_integration.DyntoolsCallback(
        tmp_path / "run", every_n_steps=5, step_stats=2
    )
    fit_lightning(tmp_path / "out", callback, checkpointing=False)
    stats = read_step_stats(tmp_path / "run")
    assert sorted(stats["step"].unique()) == list(range(0, 12, 2))  # 3 epochs x 4 batches
    assert stats["module"].unique().to_list() == ["net.1"]  # the ReLU
