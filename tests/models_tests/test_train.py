from __future__ import annotations

import dataclasses

import torch

from lepton_tune.config import ModelSpec, TrainRecipe
from lepton_tune.models import train_model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_trained_model_fields(trained) -> None:
    assert trained.backbone == "small_cnn" and not trained.from_cache
    assert trained.epochs_run == 2 and trained.train_seconds > 0
    assert trained.val_accuracy > 0.6  # two epochs of small_cnn on 16x16 digits: ~0.9
    assert trained.params > 50_000 and trained.flops > 1_000_000
    assert not trained.module.training
    assert len(trained.recipe_hash) == 20 and len(trained.history) == 2


def test_same_seed_same_weights_and_test_split_never_read(tiny_synthetic) -> None:
    recipe = TrainRecipe(epochs=2, batch_size=16)
    first = train_model("small_cnn", recipe, tiny_synthetic)
    x, y = tiny_synthetic.test
    poisoned = dataclasses.replace(tiny_synthetic, test=(torch.full_like(x, float("nan")), torch.full_like(y, -1)))
    again = train_model("small_cnn", recipe, poisoned)
    assert _same_weights(again.module, first.module)
    assert again.val_accuracy == first.val_accuracy
    other = train_model("small_cnn", recipe.model_copy(update={"seed": 1}), tiny_synthetic)
    assert not _same_weights(other.module, first.module)
    assert other.recipe_hash != first.recipe_hash


def test_progress_events_and_threads_restored(tiny_synthetic) -> None:
    events: list[dict] = []
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_model("small_cnn", TrainRecipe(epochs=2, batch_size=16), tiny_synthetic, progress=events.append)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert [e["event"] for e in events] == ["start", "epoch", "epoch", "done"]
    assert events[1]["epoch"] == 1 and events[1]["epochs"] == 2 and "val_accuracy" in events[1]
    assert all(e["backbone"] == "small_cnn" and "recipe_hash" in e for e in events)


def test_early_stopping_on_a_flat_validation_curve(digits16) -> None:
    spec = ModelSpec(python="tests.models_tests.user_models:linear")
    recipe = TrainRecipe(epochs=20, lr=1e-9, optimizer="sgd", momentum=0.0, weight_decay=0.0, patience=2)
    events: list[dict] = []
    tm = train_model(spec, recipe, digits16, progress=events.append)
    assert tm.epochs_run == 3  # epoch 1 sets the best; 2 and 3 do not beat it
    assert events[-2]["event"] == "early_stop"


def test_user_model_without_training_is_only_evaluated(digits16) -> None:
    spec = ModelSpec(python="tests.models_tests.user_models:linear", train=False)
    tm = train_model(spec, TrainRecipe(epochs=5), digits16)
    assert tm.epochs_run == 0 and tm.history == [] and 0.0 <= tm.val_accuracy <= 1.0
    assert tm.backbone == "tests.models_tests.user_models:linear"
