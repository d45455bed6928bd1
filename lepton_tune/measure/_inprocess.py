"""The naive baseline: the user's model called in their own process, as they would deploy it without us.

fp32, eager, ``eval()`` + ``inference_mode()``, batch 1, torch's default thread count, no pinning.
Two plain forms serve the same load as every trial, through the same ``submit(image) -> Future``
surface the load generator drives an :class:`~lepton_tune.engine.Engine` with:

- ``serial``: one worker thread answers requests one at a time (a single-worker server);
- ``concurrent``: every client thread calls the model itself, at once (a threaded server).

The measurement keeps the faster of the two, so every speedup against it is conservative.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future

import numpy as np
import torch

__all__ = ["FORMS", "InProcessServer"]

FORMS = ("serial", "concurrent")


class InProcessServer:
    """Serve ``model`` in this process in one of :data:`FORMS`.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
        >>> with InProcessServer(net, "serial") as server:
        ...     server.submit(np.zeros((1, 2, 2), np.float32)).result().shape
        (2,)
    """

    def __init__(self, model: torch.nn.Module, form: str) -> None:
        if form not in FORMS:
            raise ValueError(f"in-process form must be one of {FORMS}, got {form!r}")
        self.model, self.form = model.eval(), form
        self._queue: queue.SimpleQueue[tuple[np.ndarray, Future[np.ndarray]] | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    # the engine's surface, as far as the measurement uses it
    def pids(self) -> list[int]:
        return [os.getpid()]

    @property
    def threads(self) -> int:
        return torch.get_num_threads()

    def _call(self, image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = self.model(torch.from_numpy(image)[None]).float().numpy()[0]
        return out

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            image, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._call(image))
            except Exception as exc:  # noqa: BLE001 - the model's error is the request's answer
                future.set_exception(exc)

    def submit(self, image: np.ndarray) -> Future[np.ndarray]:
        """Answer one image ``[C, H, W]`` with its logits."""
        future: Future[np.ndarray] = Future()
        if self.form == "serial":
            self._queue.put((image, future))
            return future
        future.set_running_or_notify_cancel()
        try:
            future.set_result(self._call(image))
        except Exception as exc:  # noqa: BLE001 - same contract as the engine: the error is the answer
            future.set_exception(exc)
        return future

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Logits of ``images`` called one at a time, batch 1, exactly as requests are served."""
        return np.stack([self._call(np.ascontiguousarray(image)) for image in images])

    def __enter__(self) -> InProcessServer:
        if self.form == "serial":
            self._worker = threading.Thread(target=self._serve, name="inprocess-server", daemon=True)
            self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(10.0)
