"""Tiny GPT-NeoX checkpoint suites laid out as a Hugging Face hub cache, as huggingface_hub
writes it (built with transformers from a config, random weights, saved in fp16 as Pythia's
revisions are published; nothing is downloaded)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers

from bench.hub_cache import write_revision

PYTHIA = "EleutherAI/tiny-pythia"
WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "big", "red", "house"]
TEXT = " ".join(WORDS[i % len(WORDS)] for i in range(0, 700, 3))


def tiny_neox(seed: int) -> torch.nn.Module:
    config = transformers.GPTNeoXConfig(
        vocab_size=len(WORDS) + 1,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.GPTNeoXForCausalLM(config).half()


def nudge(model: torch.nn.Module, scale: float = 0.05) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(scale * torch.randn_like(parameter))


def save(model: torch.nn.Module, folder: Path, **kwargs: object) -> dict[str, Path]:
    """``save_pretrained`` into ``folder``: file name -> path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(folder, **kwargs)
    return {path.name: path for path in folder.iterdir()}


def save_tokenizer(folder: Path) -> None:
    """A word-level tokenizer of WORDS (id 0 unknown), saved as transformers saves one."""
    vocab = {"[UNK]": 0, **{word: i + 1 for i, word in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")
    fast.save_pretrained(folder)


def write_suite(
    cache: Path,
    repo: str,
    steps: tuple[int, ...],
    work: Path,
    seed: int = 0,
    *,
    tokenizer: bool = False,
) -> dict[int, Path]:
    """One repository with a revision per step, ``main`` on the last, as a Pythia download
    (``revision="stepN"``) leaves it. Returns step -> snapshot folder."""
    model = tiny_neox(seed)
    snapshots = {}
    for step in steps:
        nudge(model)
        folder = work / f"{repo.replace('/', '_')}-{step}"
        files = save(model, folder)
        if tokenizer:
            save_tokenizer(folder)
            files = {path.name: path for path in folder.iterdir()}
        branches = [f"step{step}", *(["main"] if step == steps[-1] else [])]
        snapshots[step] = write_revision(cache, repo, files, branches)
    return snapshots


def write_seeds(cache: Path, work: Path, steps: tuple[int, ...], seeds: int = 3) -> list[str]:
    """The base model and seeds 1.. of PYTHIA, with tokenizer files; their repository ids."""
    repos = [PYTHIA if seed == 0 else f"{PYTHIA}-seed{seed}" for seed in range(seeds)]
    for seed, repo in enumerate(repos):
        write_suite(cache, repo, steps, work, seed, tokenizer=True)
    return repos
