"""`train_model`: a reproducible training loop with early stopping on the validation split."""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lepton_tune.config import ModelSpec, TrainRecipe
from lepton_tune.data import Dataset
from lepton_tune.models._cache import ModelCache, content_key
from lepton_tune.models._evaluate import accuracy
from lepton_tune.models._profile import model_profile
from lepton_tune.models._registry import backbone_name, build_model, model_identity

__all__ = ["TrainedModel", "recipe_hash", "train_model"]

Progress = Callable[[dict[str, Any]], None]

#: Bumped when the loop changes what it learns (part of the cache key with the adaptation version).
TRAINING_VERSION = 2
#: Random translation of training images by up to ``image_size // 16`` pixels (edge-padded).
AUGMENT_SHIFT = True


def _shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by a random offset in [-s, s] pixels, s = max(1, size // 16)."""
    s = max(1, x.shape[-1] // 16)
    padded = torch.nn.functional.pad(x, (s, s, s, s), mode="replicate")
    offsets = torch.randint(0, 2 * s + 1, (len(x), 2), generator=gen).tolist()
    h, w = x.shape[-2:]
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])


@dataclass
class TrainedModel:
    """An fp32 model in eval mode and what its training did.

    ``recipe_hash`` is the cache key of (dataset fingerprint, model identity incl. adaptation
    version, recipe). ``train_seconds`` is 0 when the weights came from the cache.
    """

    module: nn.Module = field(repr=False)
    backbone: str
    recipe_hash: str
    val_accuracy: float
    train_seconds: float
    from_cache: bool
    epochs_run: int
    params: int
    flops: int
    image_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10
    source: str | ModelSpec = field(default="", repr=False)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)


def recipe_hash(backbone: str | ModelSpec, recipe: TrainRecipe, dataset: Dataset) -> str:
    """The content key of training ``backbone`` with ``recipe`` on ``dataset``."""
    return content_key(
        {
            "what": "trained",
            "dataset": dataset.fingerprint,
            "model": model_identity(backbone),
            "training": [TRAINING_VERSION, AUGMENT_SHIFT],
            "image_shape": list(dataset.image_shape),
            "classes": len(dataset.classes),
            "recipe": recipe.model_dump(mode="json"),
        }
    )


def _optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
    params = model.parameters()
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            nesterov=recipe.momentum > 0,
        )
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def _fit(model: nn.Module, recipe: TrainRecipe, dataset: Dataset, emit: Progress) -> tuple[int, list[dict[str, Any]]]:
    """Train in place; keep the weights of the best validation epoch. Returns (epochs run, history)."""
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    x, y = dataset.train
    opt = _optimizer(model, recipe)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(recipe.epochs, 1))
        if recipe.scheduler == "cosine"
        else None
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    best_acc, best_state, stale, history, epoch = -1.0, None, 0, [], 0
    for epoch in range(1, recipe.epochs + 1):
        start, model_loss, seen = time.perf_counter(), 0.0, 0
        model.train()
        order = torch.randperm(len(y), generator=gen)
        for first in range(0, len(order), recipe.batch_size):
            idx = order[first : first + recipe.batch_size]
            if len(idx) < 2 and seen:  # a batch of one breaks BatchNorm; drop the remainder
                continue
            opt.zero_grad(set_to_none=True)
            batch = _shift(x[idx], gen) if AUGMENT_SHIFT else x[idx]
            loss = loss_fn(model(batch), y[idx])
            loss.backward()
            opt.step()
            model_loss += float(loss.detach()) * len(idx)
            seen += len(idx)
        if sched is not None:
            sched.step()
        val_acc = accuracy(model, dataset.val)
        improved = val_acc > best_acc
        if improved:
            best_acc, best_state, stale = val_acc, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
        record = {
            "event": "epoch",
            "epoch": epoch,
            "epochs": recipe.epochs,
            "train_loss": model_loss / max(seen, 1),
            "val_accuracy": val_acc,
            "best_val_accuracy": best_acc,
            "seconds": time.perf_counter() - start,
        }
        history.append(record)
        emit(record)
        if recipe.patience and stale >= recipe.patience:
            emit({"event": "early_stop", "epoch": epoch, "best_val_accuracy": best_acc})
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return epoch, history


def train_model(
    backbone: str | ModelSpec,
    recipe: TrainRecipe,
    dataset: Dataset,
    *,
    cache: ModelCache | None = None,
    progress: Progress | None = None,
) -> TrainedModel:
    """Train ``backbone`` on ``dataset`` with ``recipe``, or reuse the cached weights.

    Training uses the train split only; early stopping (``recipe.patience``) and the kept weights
    (best epoch) use the validation split; the test split is never read. Results are reproducible
    for ``recipe.seed`` on one machine. All usable cores are used while training (the previous
    thread count is restored after). With ``cache=None`` nothing is cached. With a cache, a hit
    skips training, and concurrent processes asking for the same key train it once (file lock).
    ``progress`` receives dicts with ``backbone``, ``recipe_hash`` and ``event``: ``"start"``,
    ``"epoch"`` (``epoch``, ``epochs``, ``train_loss``, ``val_accuracy``, ``best_val_accuracy``,
    ``seconds``), ``"early_stop"``, ``"waiting"`` (another process holds the lock), ``"cache_hit"``
    or ``"done"``. Training images are randomly shifted by up to ``image_size // 16`` pixels.
    A :class:`ModelSpec` with ``train: false`` is only evaluated.

    Example:
        >>> from lepton_tune.config import DatasetSpec
        >>> from lepton_tune.data import load_dataset
        >>> ds = load_dataset(DatasetSpec(kind="digits", image_size=16, channels=1))
        >>> tm = train_model("small_cnn", TrainRecipe(epochs=1), ds)
        >>> tm.epochs_run, tm.from_cache
        (1, False)
    """
    job = _TrainJob(backbone, recipe, dataset, cache, progress)
    hit = job.from_cache()
    if hit is not None:
        return hit
    waiting = {"event": "waiting", "reason": "another process is training this recipe"}
    with cache.lock(job.key, on_wait=lambda: job.emit(waiting)) if cache is not None else contextlib.nullcontext():
        hit = job.from_cache()  # another process may have trained it while we waited
        return hit if hit is not None else job.train()


@dataclass
class _TrainJob:
    """One ``train_model`` call: the cache key, progress events, the cache lookup and the training run."""

    backbone: str | ModelSpec
    recipe: TrainRecipe
    dataset: Dataset
    cache: ModelCache | None
    progress: Progress | None

    def __post_init__(self) -> None:
        self.name = backbone_name(self.backbone)
        self.key = recipe_hash(self.backbone, self.recipe, self.dataset)

    def emit(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress({"backbone": self.name, "recipe_hash": self.key, **event})

    def build(self) -> nn.Module:
        return build_model(self.backbone, num_classes=len(self.dataset.classes), image_shape=self.dataset.image_shape)

    def result(self, module: nn.Module, meta: dict[str, Any], hit: bool) -> TrainedModel:
        module.eval()
        return TrainedModel(
            module=module,
            backbone=self.name,
            recipe_hash=self.key,
            val_accuracy=float(meta["val_accuracy"]),
            train_seconds=0.0 if hit else float(meta["train_seconds"]),
            from_cache=hit,
            epochs_run=int(meta["epochs_run"]),
            params=int(meta["params"]),
            flops=int(meta["flops"]),
            image_shape=self.dataset.image_shape,
            num_classes=len(self.dataset.classes),
            source=self.backbone,
            history=list(meta.get("history", [])),
        )

    def from_cache(self) -> TrainedModel | None:
        found = self.cache.load(self.key) if self.cache is not None else None
        if found is None:
            return None
        module = self.build()
        module.load_state_dict(found[0])
        self.emit({"event": "cache_hit", "path": str(self.cache.path_for(self.key))})  # type: ignore[union-attr]
        return self.result(module, found[1], hit=True)

    def train(self) -> TrainedModel:
        """Train on every usable core (the thread count is restored after), store in the cache."""
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        try:
            start = time.perf_counter()
            torch.manual_seed(self.recipe.seed)
            module = self.build()
            self.emit({"event": "start", "epochs": self.recipe.epochs})
            trains = not (isinstance(self.backbone, ModelSpec) and not self.backbone.train)
            epochs_run, history = _fit(module, self.recipe, self.dataset, self.emit) if trains else (0, [])
            seconds = time.perf_counter() - start
            module.eval()
            meta = {
                "kind": "trained",
                "backbone": self.name,
                "recipe_hash": self.key,
                "precision": "fp32",
                "dataset": self.dataset.fingerprint,
                "recipe": self.recipe.model_dump(mode="json"),
                "val_accuracy": accuracy(module, self.dataset.val),
                "train_seconds": seconds,
                "epochs_run": epochs_run,
                "history": history,
                **model_profile(module, self.dataset.image_shape),
            }
        finally:
            torch.set_num_threads(previous_threads)
        if self.cache is not None:
            self.cache.store(self.key, module.state_dict(), meta)
        self.emit({"event": "done", "val_accuracy": meta["val_accuracy"], "seconds": seconds})
        return self.result(module, meta, hit=False)
