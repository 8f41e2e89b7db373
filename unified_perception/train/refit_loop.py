"""The training loop and the outputs shared by the stages that refit one head on a frozen encoder
(train/pose_stage.py, train/depth_stage.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from unified_perception.train.checkpoint import (ModelConfig, load_checkpoint, load_model_weights,
                                                 model_from_checkpoint, save_checkpoint)


class RefitStart(NamedTuple):
    """What a refit stage starts from: the checkpoint's payload, its model (eval mode, on the CUDA
    device where there is one), its architecture and input size (H, W)."""

    payload: dict[str, Any]
    model: Any
    model_config: ModelConfig
    size: tuple[int, int]


def load_for_refit(checkpoint: Path, head: str, describe: str, error: type[Exception],
                   seed: int) -> RefitStart:
    """Load ``checkpoint`` for refitting its ``head`` (a model attribute); raises ``error`` naming
    the checkpoint's tasks when it has no such head (``describe``: e.g. "pose decoder")."""
    payload = load_checkpoint(checkpoint)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model_from_checkpoint(payload, checkpoint).eval().to(device)
    model_config = ModelConfig.from_dict(payload["model_config"])
    if getattr(model, head) is None:
        raise error(f"checkpoint '{checkpoint}' has no {describe} (its tasks: "
                    f"{', '.join(model_config.tasks)})")
    torch.manual_seed(seed)
    return RefitStart(payload, model, model_config, (model_config.input_height, model_config.input_width))


def fit_head(head: nn.Module, batch_loss: Callable[[Tensor], Tensor], *, samples: int, steps: int,
             batch_size: int, lr: float, weight_decay: float, seed: int, desc: str,
             progress: bool) -> list[float]:
    """Train ``head`` for ``steps`` steps of AdamW with a one-cycle schedule (5 % warm-up) and
    gradient clipping at 1; each step draws ``batch_size`` of the ``samples`` indices at random
    (seeded) and minimises ``batch_loss(index)``. Leaves ``head`` in eval mode; returns the losses."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps,
                                                   pct_start=0.05)
    head.train()
    losses: list[float] = []
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for _ in bar:
        loss = batch_loss(torch.randint(0, samples, (batch_size,), generator=generator))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    head.eval()
    return losses


def refit_state(payload: dict[str, Any], head: str, module: nn.Module, config: ModelConfig,
                name: str) -> dict[str, Tensor]:
    """The checkpoint ``payload``'s weights with the model's ``head`` (an attribute name) replaced
    by ``module``'s, checked to load into a model of ``config`` (``name`` for the message)."""
    state = dict(payload["model"])
    state.update({f"{head}.{k}": v.detach().cpu() for k, v in module.state_dict().items()})
    load_model_weights(config.build(), state, name)
    return state


def write_stage(out_dir: Path, checkpoint_name: str, payload: dict[str, Any], results_name: str,
                results: dict[str, Any], table_name: str, table: str) -> None:
    """Write a refit stage's checkpoint, results JSON and Markdown table into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_dir / checkpoint_name, payload)
    (out_dir / results_name).write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / table_name).write_text(table)
