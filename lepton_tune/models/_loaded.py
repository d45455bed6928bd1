"""Models a user already has on disk, loaded as given: a torchvision name + state dict, or a file.

A file (``torch.export`` program ``.pt2``, TorchScript, ONNX) travels as its bytes in one uint8
buffer of a :class:`FileModel`, and each process loads it from those bytes on first use: the
engine's shards, the bundle and the model cache all see one plain tensor, never a pickled graph.
Loading runs no Python code from the file: ``torch.export.load`` reads a JSON graph and raw
tensors, ``torch.jit.load`` reads TorchScript (no Python callables can be saved in it), and an
ONNX graph is data for ONNX Runtime (``tests/models_tests/test_loaded.py`` holds this).

:func:`describe_model` reads what a model says about its input and output (channels, input
side, class count) so that a mismatch with the images is refused before any trial, naming both.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lepton_tune.exceptions import ConfigError, ModelError

__all__ = [
    "FileModel",
    "build_torchvision",
    "check_model_fits",
    "check_weights_fit",
    "describe_model",
    "describe_weights",
]


def build_torchvision(name: str, num_classes: int) -> nn.Module:
    """torchvision's ``name`` architecture with ``weights=None`` and ``num_classes`` outputs (no adaptation).

    Raises:
        ModelError: torchvision has no classifier of that name.
    """
    import torchvision.models as tvm

    if name not in tvm.list_models(module=tvm):
        raise ModelError(
            f"model.torchvision: torchvision has no classification model {name!r}; see "
            "torchvision.models.list_models() (e.g. resnet18, mobilenet_v3_small, efficientnet_b0)"
        )
    model: nn.Module = tvm.get_model(name, weights=None, num_classes=num_classes)
    return model


class FileModel(nn.Module):
    """A model file served as given: fp32 ``[N, C, H, W]`` in, ``[N, classes]`` out.

    Args:
        data: the file's bytes.
        form: ``"export"`` (``torch.export.save``), ``"torchscript"`` or ``"onnx"``.
        label: the file's name, for messages.

    Example:
        >>> model = FileModel(Path("net.pt2").read_bytes(), "export")  # doctest: +SKIP
        >>> model(torch.zeros(2, 3, 32, 32)).shape  # doctest: +SKIP
        torch.Size([2, 10])
    """

    file_bytes: torch.Tensor

    def __init__(self, data: bytes, form: str, *, label: str = "model") -> None:
        super().__init__()
        if form not in ("export", "torchscript", "onnx"):
            raise ModelError(f"model.file: unknown form {form!r}; expected export, torchscript or onnx")
        self.register_buffer("file_bytes", torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy()))
        self.form, self.label = form, label
        object.__setattr__(self, "_loaded", None)  # not a submodule: state dict and pickles hold the bytes only

    @classmethod
    def from_file(cls, path: str | Path, form: str) -> FileModel:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ModelError(f"model.file: '{path}' does not exist or is not a file. Check the path")
        return cls(path.read_bytes(), form, label=path.name)

    def to_bytes(self) -> bytes:
        """The file's bytes (what a bundle stores and ONNX Runtime reads)."""
        return self.file_bytes.numpy().tobytes()

    def loaded(self) -> Any:
        """The program (export, TorchScript) or ONNX Runtime session, loaded once per process."""
        if self._loaded is None:
            object.__setattr__(self, "_loaded", _load(self.to_bytes(), self.form, self.label))
        return self._loaded

    def train(self, mode: bool = True) -> FileModel:
        # A file model is inference-only: an exported program refuses .eval()/.train() (its graph is fixed).
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "onnx":
            session = self.loaded()
            array = np.ascontiguousarray(x.detach().to(torch.float32).numpy())
            return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: array})[0])
        out = self.loaded()(x)
        first: torch.Tensor = out[0] if isinstance(out, (tuple, list)) else out
        return first

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loaded"] = None  # loaded again from the bytes in the process that unpickles it
        return state


def _refuse_pickles(data: bytes, label: str) -> None:
    """Refuse a ``.pt2`` archive that would make ``torch.export.load`` unpickle anything beyond tensors.

    ``torch.export.load`` reads weights and constants as raw tensors, except entries flagged
    ``use_pickle`` (``torch.load(weights_only=False)``), custom/opaque objects (``pickle.loads``), a
    legacy constants ``.pt`` file, and sample inputs that fail ``weights_only=True`` (it then retries
    with ``weights_only=False``). Any of those could run code from the file, so it is refused here,
    before torch sees it; ``torch.export.save`` of an ordinary model writes none of them.
    """
    import json
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ModelError(f"model.file: {label} is not a torch.export archive (not a zip file)") from None
    for name in archive.namelist():
        why = None
        if name.endswith("_config.json") and "/data/" in name:
            config = json.loads(archive.read(name) or b"{}").get("config", {})
            flagged = [
                k
                for k, v in config.items()
                if isinstance(v, dict)
                and (v.get("use_pickle") or not str(v.get("path_name", "")).startswith(("weight_", "tensor_")))
            ]
            why = f"entries {flagged[:3]} are pickled objects" if flagged else None
        elif "/data/constants/" in name and name.endswith(".pt"):
            why = "it holds a legacy pickled constants file"
        elif "/data/sample_inputs/" in name:
            try:
                torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - torch would retry with weights_only=False: refuse instead
                why = f"{name.rsplit('/', 1)[-1]} is not loadable with weights_only=True"
        if why:
            raise ModelError(
                f"model.file: {label}: {why}; loading it could run code from the file, so it is refused. "
                "Save the program again with torch.export.save from plain tensors"
            )


def _load(data: bytes, form: str, label: str) -> Any:
    try:
        if form == "export":
            _refuse_pickles(data, label)
            return torch.export.load(io.BytesIO(data)).module()
        if form == "torchscript":
            return torch.jit.load(io.BytesIO(data), map_location="cpu").eval()  # type: ignore[no-untyped-call]
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("model.file: an ONNX model needs onnxruntime (pip install 'lepton-tune[onnx]')") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the loader raises, the file is not a model of that form
        what = {
            "export": "a torch.export program (torch.export.save)",
            "torchscript": "a TorchScript file (torch.jit.save)",
            "onnx": "an ONNX graph",
        }[form]
        first = (str(exc).splitlines() or [""])[0][:200]
        raise ModelError(
            f"model.file: {label} is not {what} ({type(exc).__name__}: {first}). Check the file "
            "or its extension (.pt2 export, .onnx ONNX, anything else TorchScript)"
        ) from None


def _static(dims: Any) -> list[int | None]:
    return [int(d) if isinstance(d, int) or (hasattr(d, "__int__") and str(d).isdigit()) else None for d in dims]


def describe_model(module: nn.Module) -> dict[str, Any]:
    """What the model declares: ``channels``, ``size`` ((h, w) or None), ``classes`` (or None), ``dynamic_batch``.

    ONNX graphs and export programs declare their input and output shapes; a torch module's
    channel count is its first 4-D weight's input channels (the first convolution).
    """
    if isinstance(module, FileModel) and module.form == "onnx":
        session = module.loaded()
        ins, outs = _static(session.get_inputs()[0].shape), _static(session.get_outputs()[0].shape)
        return {
            "channels": ins[1] if len(ins) == 4 else None,
            "size": (ins[2], ins[3]) if len(ins) == 4 and None not in ins[2:] else None,
            "classes": outs[-1] if outs else None,
            "dynamic_batch": ins[0] is None if ins else None,
        }
    if isinstance(module, FileModel) and module.form == "export":
        _refuse_pickles(module.to_bytes(), module.label)
        program = torch.export.load(io.BytesIO(module.to_bytes()))
        user = set(program.graph_signature.user_inputs)
        ins = next(
            (list(n.meta["val"].shape) for n in program.graph.nodes if n.op == "placeholder" and n.name in user), []
        )
        out_node = next(n for n in program.graph.nodes if n.op == "output")
        first = out_node.args[0][0] if out_node.args and out_node.args[0] else None
        outs = list(first.meta["val"].shape) if first is not None and "val" in first.meta else []
        ins_s, outs_s = _static(ins), _static(outs)
        return {
            "channels": ins_s[1] if len(ins_s) == 4 else None,
            "size": (ins_s[2], ins_s[3]) if len(ins_s) == 4 and None not in ins_s[2:] else None,
            "classes": outs_s[-1] if outs_s else None,
            "dynamic_batch": ins_s[0] is None if ins_s else None,
        }
    target = module.loaded() if isinstance(module, FileModel) else module
    conv = next((p for p in target.parameters() if p.ndim == 4), None)
    return {
        "channels": int(conv.shape[1]) if conv is not None else None,
        "size": None,
        "classes": None,
        "dynamic_batch": None,
    }


def check_model_fits(
    module: nn.Module, *, model_label: str, data_label: str, num_classes: int, image_shape: tuple[int, int, int]
) -> None:
    """Refuse a model whose channels, input side or class count differ from the images' (ConfigError, exit 2).

    A model that declares nothing is probed with two images of the data's shape.
    """
    info = describe_model(module)
    channels, height, width = image_shape
    problems = []
    if info["channels"] is not None and info["channels"] != channels:
        problems.append(
            f"model {model_label} takes {info['channels']}-channel images, but the images in {data_label} "
            f"are read as {channels}-channel (dataset.channels). Set channels: {info['channels']}"
        )
    if info["size"] is not None and tuple(info["size"]) != (height, width):
        problems.append(
            f"model {model_label} takes {info['size'][0]}x{info['size'][1]} inputs, but the images in "
            f"{data_label} are prepared as {height}x{width}. Set center_crop/image_size to {info['size'][0]}"
        )
    if info["dynamic_batch"] is False:
        problems.append(
            f"model {model_label} has a fixed batch size; the engine batches requests. Export it with a "
            "dynamic batch dimension (torch.export Dim('batch') / ONNX dynamic_axes)"
        )
    classes = info["classes"]
    if classes is None and not problems:
        try:
            with torch.inference_mode():
                out = module(torch.zeros((2, *image_shape)))
        except Exception as exc:  # noqa: BLE001 - the model cannot take the data's images: say which
            first = (str(exc).splitlines() or [""])[0][:200]
            raise ConfigError(
                f"model {model_label} cannot take {channels}x{height}x{width} images from {data_label} "
                f"({type(exc).__name__}: {first})"
            ) from None
        classes = int(out.shape[-1]) if out.ndim == 2 else None
    if classes is not None and classes != num_classes:
        problems.append(
            f"model {model_label} has {classes} classes (outputs), but {data_label} has {num_classes} "
            "classes. Use the images the model was trained for, or a --classes file listing its classes"
        )
    if problems:
        raise ConfigError(problems)


def describe_weights(weights: str | Path) -> dict[str, int | None]:
    """``channels`` (the first 4-D weight's input channels) and ``classes`` (the last 2-D weight's rows) of a state dict.

    None where the file is unreadable (the loader reports that) or holds no such tensor.
    """
    try:
        state = torch.load(Path(weights).expanduser(), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the loader with its own message
        return {"channels": None, "classes": None}
    tensors = [v for v in state.values() if isinstance(v, torch.Tensor)] if isinstance(state, dict) else []
    conv = next((t for t in tensors if t.ndim == 4), None)
    head = next((t for t in reversed(tensors) if t.ndim == 2), None)
    return {
        "channels": int(conv.shape[1]) if conv is not None else None,
        "classes": int(head.shape[0]) if head is not None else None,
    }


def check_weights_fit(
    weights: str | Path, *, model_label: str, data_label: str, num_classes: int, channels: int
) -> None:
    """Refuse a state dict whose first convolution or last 2-D weight (the head) disagrees with the images.

    Read before the architecture is built, so that the error names both numbers instead of a
    ``load_state_dict`` size mismatch. A state dict without such tensors is left to the probe.
    """
    info = describe_weights(weights)
    problems = []
    if info["channels"] is not None and info["channels"] != channels:
        problems.append(
            f"model {model_label} (weights {Path(weights).name}) takes {info['channels']}-channel images, "
            f"but the images in {data_label} are read as {channels}-channel. Set channels: {info['channels']}"
        )
    if info["classes"] is not None and info["classes"] != num_classes:
        problems.append(
            f"model {model_label} (weights {Path(weights).name}) has {info['classes']} classes (outputs), "
            f"but {data_label} has {num_classes} classes. Use the images the model was trained for, or a "
            "--classes file listing its classes"
        )
    if problems:
        raise ConfigError(problems)
