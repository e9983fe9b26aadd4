"""The training loop: devices, distribution, sampling, checkpoints, logging, exact resumption.

Run folder (what ``--out`` holds; the exporter and the live pipeline's ``--models`` read it):

    RUN_DIR/
      command.txt          the exact command line of each start (appended on resume)
      config.json          {"recipe": name, "config": {...}} as the run used it
      metadata.json        ModelMetadata of the trained model (labels, sample rate, window, I/O)
      metrics.jsonl        one JSON object per line: {"kind": "train", step, epoch, loss, lr}
                           every ``LOG_EVERY`` steps and {"kind": "eval", step, epoch, ...figures}
      curve.png            loss and the primary figure against steps (written at the end)
      checkpoints/last.pt  the newest checkpoint (epoch ends and every ``checkpoint_every`` steps)
      checkpoints/best.pt  the checkpoint with the best primary figure so far
      tensorboard/         event files, when TensorBoard is installed

Exact resumption: a checkpoint holds the step, the epoch, the batch position within the epoch,
optimizer and scheduler state and every RNG state; batches are addressed by (epoch, index) and
drawn from (seed, epoch) alone, and DataLoader workers get their own generator, so a resumed run
continues with the same batches and the same random draws as a run that never stopped
(tests/test_train.py kills a run with SIGKILL and compares the weights bit for bit).

Distributed: started under ``torchrun``, each process takes its slice of every global batch;
DistributedDataParallel averages gradients (NCCL on GPUs, with BatchNorm converted to
SyncBatchNorm when ``sync_bn``; gloo on CPUs). Rank 0 evaluates and writes the run folder.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from models.core.atomic import atomic_write_text
from models.core.checkpoint import BEST, LAST, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from models.core.train_config import config_to_dict
from models.core.recipe import Recipe
from models.datasets.labelled_sets import check_layout
from models.train.sampler import ResumableBatchSampler

LOG_EVERY = 10


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); NCCL on CUDA, else gloo."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return DistInfo(rank, world_size, local_rank)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _to_device(batch, device):
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class _Logger:
    """metrics.jsonl, and TensorBoard when installed (rank 0 only)."""

    def __init__(self, out: Path):
        self.path = out / "metrics.jsonl"
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # noqa: BLE001 - TensorBoard is optional
            self.tb = None

    def log(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.tb.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def plot_curves(out: Path, primary: str) -> Path | None:
    """curve.png: training loss and the primary evaluation figure against steps."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval" and primary in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    ax1.set(xlabel="step", ylabel="training loss", title="loss")
    ax2.plot([r["step"] for r in evals], [r[primary] for r in evals], marker="o")
    ax2.set(xlabel="step", ylabel=primary, title=f"validation {primary}")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    target = out / "curve.png"
    tmp = out / ".curve.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, target)
    return target


def _over_time_limit(elapsed_s: float, limit_min: float, world_size: int, device: torch.device) -> bool:
    """Whether the time limit has passed; in a distributed run every process takes rank 0's
    answer, so all of them stop after the same step."""
    over = elapsed_s >= limit_min * 60.0
    if world_size == 1:
        return over
    flag = torch.tensor([1.0 if over else 0.0], device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def data_recipes() -> list[str]:
    """``name (layouts)`` of every registered recipe that reads ``--data``."""
    from models.families import RECIPES

    return [f"{e.name} ({'/'.join(e.factory.reads)})" for e in RECIPES.entries() if e.factory.reads]


def readers_of(layout: str) -> list[str]:
    """The registered recipes that read ``layout``."""
    from models.families import RECIPES

    return [e.name for e in RECIPES.entries() if layout in e.factory.reads]


def train(recipe: Recipe, out: Path, *, data: Path | None = None, resume: bool = False, argv: list[str] | None = None) -> dict:
    """Train ``recipe`` into the run folder ``out``; returns the last evaluation figures."""
    cfg = recipe.config
    cfg.validate()
    if data is not None:
        if not recipe.reads:
            raise ValueError(f"recipe {recipe.name!r} trains on the built-in world only and reads no --data ({data}); "
                             f"recipes that read data: {', '.join(data_recipes())}")
        check_layout(data, recipe.name, recipe.reads, readers_of)
    info = init_distributed(cfg.device)
    device = torch.device("cuda", info.local_rank) if cfg.device == "cuda" else torch.device("cpu")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(out)
    ckpt_dir = out / "checkpoints"
    if info.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if not resume and (ckpt_dir / LAST).exists():
            raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        with open(out / "command.txt", "a") as f:
            f.write(shlex.join(argv if argv is not None else [sys.executable, *sys.argv]) + "\n")
        atomic_write_text(out / "config.json", json.dumps({"recipe": recipe.name, "config": config_to_dict(cfg)}, indent=1) + "\n")

    train_set, val_set = recipe.build_datasets(data)
    model = recipe.build_model().to(device)
    optimizer = recipe.build_optimizer(model)
    sampler = ResumableBatchSampler(len(train_set), cfg.batch_size, cfg.seed, rank=info.rank, world_size=info.world_size,
                                    shuffle=recipe.shuffle_train)
    total_steps = cfg.epochs * sampler.batches_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, recipe.lr_lambda(sampler.batches_per_epoch, total_steps))

    epoch, batch_pos, step, best, elapsed_before = 0, 0, 0, -math.inf, 0.0
    evaluated_at = -1  # the step of the newest evaluation (a run killed before its last one repeats it)
    if resume and (ckpt_dir / LAST).exists():
        state = load_checkpoint(ckpt_dir / LAST)
        model.load_state_dict(state["model_state"])
        ts = state["train_state"]
        optimizer.load_state_dict(ts["optimizer"])
        scheduler.load_state_dict(ts["scheduler"])
        epoch, batch_pos, step, best = ts["epoch"], ts["batch"], ts["step"], ts["best"]
        elapsed_before = float(ts.get("elapsed_s", 0.0))
        evaluated_at = int(ts.get("evaluated_at", -1))
        set_rng_state(ts["rng"])
        if info.is_main:
            print(f"resuming {out} at epoch {epoch}, batch {batch_pos}, step {step}", file=sys.stderr)

    train_model: nn.Module = model
    if info.world_size > 1:
        if cfg.device == "cuda" and cfg.sync_bn:
            train_model = nn.SyncBatchNorm.convert_sync_batchnorm(train_model)
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=[info.local_rank] if cfg.device == "cuda" else None)

    logger = _Logger(out) if info.is_main else None
    metadata = recipe.metadata(model).to_dict()
    if info.is_main:
        atomic_write_text(out / "metadata.json", json.dumps(metadata, indent=1) + "\n")
    config_dict = config_to_dict(cfg)

    def checkpoint(kind: str, figures: dict | None = None) -> None:
        if not info.is_main:
            return
        train_state = {
            "epoch": epoch, "batch": batch_pos, "step": step, "best": best, "elapsed_s": elapsed(),
            "evaluated_at": evaluated_at,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
        }
        save_checkpoint(ckpt_dir / kind, recipe=recipe.name, config=config_dict, model_state=_unwrap(model).state_dict(), metadata=metadata, train_state=train_state)

    last_figures: dict = {}
    started = time.perf_counter()

    def elapsed() -> float:
        """Training wall time in seconds, including the runs this one resumes."""
        return elapsed_before + time.perf_counter() - started

    def evaluate() -> None:
        """Validate, log, keep the best checkpoint (main process; the others wait)."""
        nonlocal last_figures, best, evaluated_at
        evaluated_at = step  # on every rank (each decides alike whether a final evaluation is owed)
        if info.is_main:
            _unwrap(model).eval()
            val_loader = DataLoader(val_set, batch_size=max(1, cfg.batch_size), num_workers=cfg.num_workers, collate_fn=recipe.collate, generator=torch.Generator().manual_seed(0))
            with torch.inference_mode():
                last_figures = recipe.evaluate(_unwrap(model), val_loader)
            record = {"kind": "eval", "step": step, "epoch": epoch, "elapsed_s": round(elapsed(), 1), **last_figures}
            logger.log(record)
            summary = ", ".join(f"{k} {v:.4f}" for k, v in last_figures.items() if isinstance(v, float))
            print(f"step {step} epoch {epoch}: {summary}", file=sys.stderr)
            if last_figures[recipe.primary_metric] > best:
                best = last_figures[recipe.primary_metric]
                checkpoint(BEST)
        if info.world_size > 1:
            dist.barrier()

    done = step >= total_steps
    timed_out = False
    while epoch < cfg.epochs and not done:
        sampler.set_epoch(epoch, batch_pos)
        loader = DataLoader(
            train_set, batch_sampler=sampler, num_workers=cfg.num_workers, collate_fn=recipe.collate,
            # A private generator: creating the loader must not draw from the global RNG.
            generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch),
            persistent_workers=False, pin_memory=cfg.device == "cuda",
        )
        recipe.set_train_mode(train_model)
        bar = tqdm(loader, total=len(sampler), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not info.is_main, leave=False, dynamic_ncols=True)
        for batch in bar:
            batch = _to_device(batch, device)
            loss = recipe.loss(train_model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            recipe.after_step(_unwrap(train_model), step)
            batch_pos += 1
            if info.is_main:
                bar.set_postfix(loss=f"{loss.item():.4f}", **{k: f"{v:.3f}" for k, v in list(last_figures.items())[:1]})
                if step % LOG_EVERY == 0:
                    logger.log({"kind": "train", "step": step, "epoch": epoch, "loss": float(loss.item()), "lr": scheduler.get_last_lr()[0]})
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint(LAST)
            if step >= total_steps:
                done = True
                break
            if cfg.time_limit_min and _over_time_limit(elapsed(), cfg.time_limit_min, info.world_size, device):
                timed_out = done = True
                break
        bar.close()
        epoch_finished = batch_pos >= sampler.batches_per_epoch
        if epoch_finished:
            epoch, batch_pos = epoch + 1, 0
        if epoch % cfg.eval_every == 0 or done or epoch == cfg.epochs:
            evaluate()
        checkpoint(LAST)
    if done and evaluated_at != step:  # resumed after the last step's checkpoint, before its evaluation
        evaluate()
        checkpoint(LAST)
    if info.is_main:
        logger.close()
        plot_curves(out, recipe.primary_metric)
        if timed_out:
            print(f"time limit of {cfg.time_limit_min:g} min reached at step {step} of {total_steps}", file=sys.stderr)
        print(f"trained {step} steps in {elapsed():.0f} s; run folder {out}", file=sys.stderr)
    if info.world_size > 1:
        dist.destroy_process_group()
    return last_figures
