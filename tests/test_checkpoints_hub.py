"""The Hugging Face hub cache as a layout: caches built in the test with huggingface_hub's own
writers (relative links into blobs/, refs files), from tiny GPT-NeoX models saved in fp16 by
transformers, as Pythia's revisions are published."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dyntools.checkpoints import discover_runs, open_checkpoint
from dyntools.checkpoints.layout_hub import BranchStep, branch_step, task_and_seed
from dyntools.cli import main

pytest.importorskip("transformers")
huggingface_hub = pytest.importorskip("huggingface_hub")
from hub_suites import PYTHIA, save, write_suite  # noqa: E402
from hub_suites import nudge as _nudge  # noqa: E402
from hub_suites import tiny_neox as _model  # noqa: E402

from bench.hub_cache import write_revision  # noqa: E402  (needs huggingface_hub)

STEPS = (0, 1, 4, 8)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache with a Pythia-like suite of three seeds, as huggingface_hub lays it out."""
    root = tmp_path_factory.mktemp("hub")
    cache = root / "hub"
    work = root / "saved"
    write_suite(cache, PYTHIA, STEPS, work)
    for seed in (1, 2):
        write_suite(cache, f"{PYTHIA}-seed{seed}", STEPS, work, seed=seed)
    return cache


def test_each_repository_is_a_run_and_each_branch_a_step(cache: Path) -> None:
    found = discover_runs(cache)
    assert [run.run_id for run in found.runs] == [PYTHIA, f"{PYTHIA}-seed1", f"{PYTHIA}-seed2"]
    assert not found.all_problems()
    for run in found.runs:
        assert run.layout == "hf-hub-cache"
        # main points at step8's commit: that step, not a second checkpoint
        assert [ref.step for ref in run.checkpoints] == list(STEPS)
        assert run.config["hub_repo"] == run.run_id
        assert run.config["model_type"] == "gpt_neox"  # the snapshot's config.json


def test_the_library_sees_the_same_cache(cache: Path) -> None:
    """huggingface_hub's own scanner agrees: every revision we read is one it lists, with the
    branch names we took the step from."""
    info = huggingface_hub.scan_cache_dir(cache)
    assert not info.warnings
    found = {run.run_id: run for run in discover_runs(cache).runs}
    for repo in info.repos:
        run = found[repo.repo_id]
        by_commit = {rev.commit_hash: rev.refs for rev in repo.revisions}
        read = {ref.files[0].parent.name: ref.step for ref in run.checkpoints}
        assert set(read) == set(by_commit)
        for commit, step in read.items():
            assert f"step{step}" in by_commit[commit]


def test_seeds_of_one_model_are_runs_of_one_task(cache: Path) -> None:
    runs = discover_runs(cache).runs
    assert {run.config["task"] for run in runs} == {PYTHIA}
    assert [run.config["seed"] for run in runs] == [None, 1, 2]
    assert task_and_seed("EleutherAI/pythia-160m-seed7") == ("EleutherAI/pythia-160m", 7)
    assert task_and_seed("EleutherAI/pythia-160m-deduped") == (
        "EleutherAI/pythia-160m-deduped",
        None,
    )


def test_fp16_tensors_read_exactly_through_the_links(cache: Path) -> None:
    """Read lazily, one tensor at a time, in their stored precision (the metrics compute in
    float32 or better)."""
    run = discover_runs(cache).runs[0]
    ref = run.checkpoints[-1]
    assert ref.files[0].is_symlink()  # read through the cache's link into blobs/
    stored = load_file(ref.files[0])
    with open_checkpoint(ref) as reader:
        for name in ("gpt_neox.layers.0.attention.query_key_value.weight", "embed_out.weight"):
            tensor = reader.read(name)
            assert tensor.dtype == torch.float16
            assert torch.equal(tensor, stored[name])


def test_one_repository_folder_given_directly(cache: Path) -> None:
    (run,) = discover_runs(cache / "models--EleutherAI--tiny-pythia-seed1").runs
    assert run.run_id == f"{PYTHIA}-seed1"
    assert [ref.step for ref in run.checkpoints] == list(STEPS)


def test_a_snapshot_no_branch_names_is_a_problem_never_a_guess(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    write_suite(cache, "org/model", (10, 20), tmp_path / "saved")
    # hf_hub_download(revision=<commit hash>) writes the snapshot and no ref
    model = _model(9)
    detached = write_revision(cache, "org/model", save(model, tmp_path / "detached"))
    found = discover_runs(cache)
    (run,) = found.runs
    assert [ref.step for ref in run.checkpoints] == [10, 20]
    (problem,) = found.all_problems()
    assert problem.path == detached
    assert "step unknown: no branch points at this snapshot" in problem.message()


def test_a_snapshot_only_main_names_has_no_step(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    snapshot = write_revision(cache, "org/final", save(_model(0), tmp_path / "m"), ["main"])
    found = discover_runs(cache)
    assert not found.runs or not found.runs[0].checkpoints
    messages = [p.message() for p in found.all_problems() if p.path == snapshot]
    assert messages
    assert "only 'main' points" in messages[0]


def test_sharded_and_pickled_snapshots_are_read_as_the_trainer_writes_them(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    model = _model(3)
    sharded = write_revision(
        cache,
        "org/sharded",
        save(model, tmp_path / "sharded", max_shard_size="4KB"),
        ["step100"],
    )
    assert (sharded / "model.safetensors.index.json").is_symlink()
    # What transformers before safetensors wrote (and many published revisions hold): the
    # state dict pickled by torch.save beside config.json.
    files = save(model, tmp_path / "pickled")
    # The tensors under the names a checkpoint holds (transformers renames some on saving).
    expected = {n: t.float() for n, t in load_file(files["model.safetensors"]).items()}
    bin_file = tmp_path / "pickled" / "pytorch_model.bin"
    torch.save(load_file(files["model.safetensors"]), bin_file)
    files = {"config.json": files["config.json"], "pytorch_model.bin": bin_file}
    pickled = write_revision(cache, "org/pickled", files, ["step100"])
    assert (pickled / "pytorch_model.bin").exists()
    found = {run.run_id: run for run in discover_runs(cache).runs}
    for run_id in ("org/sharded", "org/pickled"):
        (ref,) = found[run_id].checkpoints
        if run_id == "org/sharded":
            assert len(ref.files) > 1
        with open_checkpoint(ref) as reader:
            names = reader.names()
            assert "gpt_neox.layers.1.mlp.dense_4h_to_h.weight" in names
            for name in names:
                assert torch.equal(reader.read(name).float(), expected[name])


def test_olmo_stages_are_runs_and_tokens_a_scalar(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    model = _model(4)
    for branch in ("stage1-step100-tokens1B", "stage1-step200-tokens2B"):
        _nudge(model)
        write_revision(cache, "allenai/OLMo-tiny", save(model, tmp_path / branch), [branch])
    branch = "stage2-ingredient1-step50-tokens1B"
    _nudge(model)
    write_revision(cache, "allenai/OLMo-tiny", save(model, tmp_path / branch), [branch])
    runs = {run.run_id: run for run in discover_runs(cache).runs}
    assert sorted(runs) == ["allenai/OLMo-tiny@stage1", "allenai/OLMo-tiny@stage2"]
    stage1 = runs["allenai/OLMo-tiny@stage1"]
    assert [ref.step for ref in stage1.checkpoints] == [100, 200]
    assert [dict(ref.scalars)["tokens"] for ref in stage1.checkpoints] == [1e9, 2e9]
    assert {run.config["task"] for run in runs.values()} == {"allenai/OLMo-tiny"}


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        ("step143000", BranchStep(143000)),
        ("step0", BranchStep(0)),
        ("step1000-tokens4B", BranchStep(1000, None, {"tokens": 4e9})),
        ("step20-tokens84M", BranchStep(20, None, {"tokens": 84e6})),
        (
            "stage1-step928646-tokens3896B",
            BranchStep(928646, 1, {"tokens": 3896e9, "stage": 1.0}),
        ),
        (
            "stage2-ingredient3-step11931-tokens100B",
            BranchStep(11931, 2, {"tokens": 100e9, "stage": 2.0}),
        ),
        ("ckpt_042", BranchStep(42)),
        ("iter-2000", BranchStep(2000)),
        ("v2-run3-checkpoint-500", BranchStep(500)),
        ("main", None),
        ("refs/pr/x", None),
    ],
)
def test_branch_rules(branch: str, expected: BranchStep | None) -> None:
    assert branch_step(branch) == expected


def test_links_out_of_the_repository_are_not_followed(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    model = _model(5)
    snapshot = write_revision(cache, "org/model", save(model, tmp_path / "a"), ["step1"])
    elsewhere = tmp_path / "elsewhere.safetensors"
    shutil.copyfile(snapshot / "model.safetensors", elsewhere)
    (snapshot / "model.safetensors").unlink()
    (snapshot / "model.safetensors").symlink_to(elsewhere)
    found = discover_runs(cache)
    assert not any(run.checkpoints for run in found.runs)
    assert any("links outside its repository" in p.message() for p in found.all_problems())


def test_a_damaged_ref_and_a_half_written_one(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    write_suite(cache, "org/model", (1, 2), tmp_path / "saved")
    refs = cache / "models--org--model" / "refs"
    (refs / "step9").write_text("not a commit")
    # huggingface_hub writes refs through a temporary file and a rename: one left behind by a
    # killed download names no branch
    (refs / "step3.1a2b3c4d.tmp").write_text((refs / "step1").read_text())
    found = discover_runs(cache)
    (run,) = found.runs
    assert [ref.step for ref in run.checkpoints] == [1, 2]
    (problem,) = found.all_problems()
    assert problem.path == refs / "step9"
    assert "holds no commit hash" in problem.message()


def test_config_and_scan_agree_on_the_snapshot_config(cache: Path) -> None:
    run = discover_runs(cache).runs[0]
    config = json.loads((run.checkpoints[-1].files[0].parent / "config.json").read_text())
    assert run.config["architectures"] == config["architectures"] == ["GPTNeoXForCausalLM"]


def test_runs_compute_and_a_fit_over_the_seeds_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands a user runs on a cache: the seeds of one model are one task to fit; a
    repository of another model in the same cache is left out."""
    cache = tmp_path / "hub"
    steps = (0, 1, 2, 4, 8, 16, 32, 64)
    for seed in (0, 1, 2):
        repo = PYTHIA if seed == 0 else f"{PYTHIA}-seed{seed}"
        write_suite(cache, repo, steps, tmp_path / "saved", seed=seed)
    write_suite(cache, "org/other", (1, 2), tmp_path / "saved")
    assert main(["runs", str(cache), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(run["id"], run["task"]) for run in listed["runs"]] == [
        (PYTHIA, PYTHIA),
        (f"{PYTHIA}-seed1", PYTHIA),
        (f"{PYTHIA}-seed2", PYTHIA),
        ("org/other", "org/other"),
    ]
    assert main(["compute", str(cache), "--workers", "1"]) == 0
    capsys.readouterr()
    fit = ["fit", str(cache), "--task", PYTHIA, "--max-states", "2", "--restarts", "2", "--json"]
    assert main(fit) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["run_ids"]) == [PYTHIA, f"{PYTHIA}-seed1", f"{PYTHIA}-seed2"]
    assert main(["fit", str(cache), "--task", "EleutherAI/pythia-1b"]) != 0
    assert "its tasks: EleutherAI/tiny-pythia, org/other" in capsys.readouterr().err
