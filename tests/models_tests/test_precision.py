from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from lepton_tune.config import PRECISIONS
from lepton_tune.exceptions import ModelError
from lepton_tune.models import ModelCache, build_model, convert_precision, precision_support

#: Minimum top-1 agreement with fp32 on the validation split (270 digits), per precision.
AGREEMENT = {"fp32": 1.0, "bf16": 0.97, "int8": 0.95, "int8_dynamic": 0.97}
CPU_PRECISIONS = [p for p in PRECISIONS if precision_support(p, "cpu") is None]


def test_support_on_this_cpu() -> None:
    assert precision_support("fp32") is None and precision_support("int8") is None
    assert precision_support("int8_dynamic") is None
    bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert (precision_support("bf16") is None) == bf16
    assert "fp16 runs on CUDA only" in precision_support("fp16", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a host without CUDA")
def test_cuda_without_cuda() -> None:
    assert "needs CUDA" in precision_support("fp16", "cuda")
    assert "needs CUDA" in precision_support("fp32", "cuda:0")


def test_bad_precision_and_device() -> None:
    with pytest.raises(ModelError, match=r"precision: unknown value 'int4'; choose one of fp32, bf16"):
        precision_support("int4")
    with pytest.raises(ModelError, match=r"device: must be 'cpu' or 'cuda\[:N\]', got 'tpu'"):
        precision_support("fp32", "tpu")


def test_unsupported_conversion_names_the_reason(trained, digits16) -> None:
    with pytest.raises(ModelError, match=r"precision 'fp16' on cpu: not supported here: fp16 runs on CUDA only"):
        convert_precision(trained, "fp16", digits16)


@pytest.mark.parametrize("precision", CPU_PRECISIONS)
def test_conversion_agrees_with_fp32(trained, digits16, precision: str) -> None:
    cm = convert_precision(trained, precision, digits16)
    assert cm.precision == precision and not cm.from_cache
    assert cm.val_agreement >= AGREEMENT[precision]
    assert cm.val_accuracy_change == pytest.approx(cm.val_accuracy - trained.val_accuracy)
    with torch.inference_mode():
        out = cm.module(digits16.val[0][:4])
    assert out.dtype == torch.float32 and out.shape == (4, 10)


def test_converted_artifacts_are_cached(tmp_path: Path, trained, digits16) -> None:
    cache = ModelCache(tmp_path)
    x = digits16.val[0][:32]
    for precision in ("bf16", "int8", "int8_dynamic"):
        first = convert_precision(trained, precision, digits16, cache=cache)
        second = convert_precision(trained, precision, digits16, cache=cache)
        assert not first.from_cache and second.from_cache and second.convert_seconds == 0.0
        assert first.artifact_hash == second.artifact_hash
        with torch.inference_mode():
            assert torch.equal(first.module(x), second.module(x))
    assert sorted(e["precision"] for e in cache.entries()) == ["bf16", "int8", "int8_dynamic"]


def test_corrupt_converted_entry_is_rebuilt(tmp_path: Path, trained, digits16) -> None:
    cache = ModelCache(tmp_path)
    first = convert_precision(trained, "int8", digits16, cache=cache)
    weights = cache.path_for(first.artifact_hash) / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.warns(UserWarning, match=r"weights\.pt: corrupt model cache entry"):
        again = convert_precision(trained, "int8", digits16, cache=cache)
    assert not again.from_cache and again.val_accuracy == first.val_accuracy


def _run_in_child(q_in, q_out) -> None:
    while (item := q_in.get()) is not None:
        module, x = item
        with torch.inference_mode():
            q_out.put(module(x).numpy().tobytes())


def test_converted_modules_unpickle_in_a_fresh_process(trained, digits16) -> None:
    """Engine shards receive modules through torch.multiprocessing in spawned processes."""
    ctx = mp.get_context("spawn")
    q_in, q_out = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=_run_in_child, args=(q_in, q_out))
    child.start()
    x = digits16.val[0][:8]
    try:
        for precision in ("int8", "int8_dynamic", "bf16"):
            module = convert_precision(trained, precision, digits16).module
            q_in.put((module, x))
            with torch.inference_mode():
                assert q_out.get(timeout=60) == module(x).numpy().tobytes(), precision
    finally:
        q_in.put(None)
        child.join(timeout=30)


def test_int8_on_resnet18(tiny_synthetic) -> None:
    module = build_model("resnet18", num_classes=3, image_shape=tiny_synthetic.image_shape).eval()
    cm = convert_precision(_fake_trained(module, tiny_synthetic), "int8", tiny_synthetic)
    with torch.inference_mode():
        assert cm.module(tiny_synthetic.val[0][:2]).shape == (2, 3)


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: FX cannot trace it
            x = -x
        return self.fc(x.flatten(1))


def test_untraceable_model_cannot_be_int8(digits16) -> None:
    tm = _fake_trained(_Branchy(), digits16)
    with pytest.raises(ModelError, match=r"precision int8: quantization failed for 'custom' \(TraceError"):
        convert_precision(tm, "int8", digits16)


def _fake_trained(module: nn.Module, dataset):
    from lepton_tune.models import TrainedModel

    return TrainedModel(
        module=module.eval(),
        backbone="custom",
        recipe_hash="0" * 20,
        val_accuracy=0.1,
        train_seconds=0.0,
        from_cache=False,
        epochs_run=0,
        params=0,
        flops=0,
        image_shape=dataset.image_shape,
        num_classes=len(dataset.classes),
    )


def test_cuda_answers_with_a_cuda_device_mocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU here: only the decision is checked, with torch.cuda's answers mocked."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision_support("fp16", "cuda") is None and precision_support("fp32", "cuda:1") is None
    assert "not supported by the CUDA device" in precision_support("bf16", "cuda")
    assert "run on CPU only" in precision_support("int8", "cuda")
