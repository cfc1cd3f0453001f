"""Write the tiny checkpoint folders under tests/fixtures/layouts/ with the real libraries.

The reader's tests run against what Hugging Face Trainer and PyTorch Lightning really write,
without needing either library at test time. Re-run after upgrading them:

    .venv/bin/python -m pip install -c constraints.txt -e ".[fixtures]"
    .venv/bin/python scripts/make_layout_fixtures.py --out tests/fixtures/layouts

Optimizer, scheduler and RNG states are deleted (the reader never opens them) to keep the
fixtures a few hundred KB; ``training_args.bin`` (a full pickle the reader must leave alone)
is kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from pathlib import Path

import torch

SEED = 0
# Files a checkpoint folder holds that the reader does not need.
DROPPED = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt")


class PairDataset(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Tiny token sequences labelled by whether their first token is even."""

    def __init__(self, count: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 16, (count, 6), generator=generator)
        self.labels = (self.ids[:, 0] % 2 == 0).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.labels[index]}


def make_hf(out: Path) -> None:
    from huggingface_hub import save_torch_state_dict
    from safetensors.torch import load_file
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        Trainer,
        TrainingArguments,
    )

    torch.manual_seed(SEED)
    config = BertConfig(
        vocab_size=16,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=8,
        type_vocab_size=1,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)
    run = out / "hf_trainer"
    args = TrainingArguments(
        output_dir=str(run),
        max_steps=24,
        save_steps=8,
        logging_steps=4,
        eval_strategy="steps",
        eval_steps=8,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        seed=SEED,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=PairDataset(64, 1),
        eval_dataset=PairDataset(16, 2),
    )
    trainer.train()
    for folder in sorted(run.glob("checkpoint-*")):
        for name in DROPPED:
            (folder / name).unlink(missing_ok=True)
    # The same checkpoints saved in shards, as save_pretrained writes large models.
    sharded = out / "hf_sharded"
    for folder in sorted(run.glob("checkpoint-*")):
        target = sharded / folder.name
        target.mkdir(parents=True)
        # huggingface_hub's writer is the one save_pretrained uses to shard large models (a
        # model this small is kept whole by save_pretrained itself).
        weights = load_file(str(folder / "model.safetensors"))
        save_torch_state_dict(
            {k: v.clone() for k, v in weights.items()}, target, max_shard_size=1500
        )
        shutil.copy(folder / "config.json", target / "config.json")
        shutil.copy(folder / "trainer_state.json", target / "trainer_state.json")


class TinyLightningNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 8)
        self.bn = torch.nn.BatchNorm1d(8)
        self.fc2 = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def make_lightning(out: Path) -> None:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    class Module(L.LightningModule):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = TinyLightningNet()

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
            x, y = batch
            logits = self.net(x)
            self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(1) == y).float().mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])

    L.seed_everything(SEED, verbose=False)
    generator = torch.Generator().manual_seed(SEED)
    x = torch.randn(32, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    data = torch.utils.data.TensorDataset(x, y)
    train = torch.utils.data.DataLoader(data, batch_size=8)
    val = torch.utils.data.DataLoader(data, batch_size=16)
    logger = CSVLogger(save_dir=str(out / "lightning"), name="lightning_logs")
    checkpoints = ModelCheckpoint(every_n_epochs=1, save_top_k=-1, save_last=True)
    trainer = L.Trainer(
        max_epochs=3,
        logger=logger,
        callbacks=[checkpoints],
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(Module(), train, val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/layouts"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # the libraries' own deprecation chatter
    for name in ("hf_trainer", "hf_sharded", "lightning"):
        shutil.rmtree(args.out / name, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    make_hf(args.out)
    make_lightning(args.out)
    versions = {}
    for package in ("torch", "transformers", "lightning"):
        from importlib.metadata import version

        versions[package] = version(package)
    (args.out / "VERSIONS.json").write_text(json.dumps(versions, indent=2) + "\n")


if __name__ == "__main__":
    main()
