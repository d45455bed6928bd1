"""Open a bundle: verify its files, rebuild the served module, start the same engine the trial measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton_tune.bundle._manifest import read_manifest
from lepton_tune.bundle._runtimes import load_served
from lepton_tune.config import EngineConfig
from lepton_tune.exceptions import BundleError

if TYPE_CHECKING:
    from torch import nn

    from lepton_tune.engine import Engine

__all__ = ["Bundle", "load_bundle", "open_bundle"]


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its manifest, the rebuilt module and the EngineConfig it was measured with."""

    root: Path
    manifest: dict[str, Any] = field(repr=False)
    module: nn.Module = field(repr=False)
    config: EngineConfig

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.manifest.get("classes", [])]

    @property
    def preprocessing(self) -> dict[str, Any]:
        return dict(self.manifest["preprocessing"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.manifest["model"]["image_shape"])

    def engine(self, **overrides: Any) -> Engine:
        """A new (not started) Engine serving this bundle; ``overrides`` replace EngineConfig fields.

        Raises:
            BundleError: an override is not a valid EngineConfig field or value.
        """
        from pydantic import ValidationError

        from lepton_tune.engine import Engine

        config = self.config
        if overrides:
            try:
                config = EngineConfig(**{**self.config.model_dump(), **overrides})
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(map(str, first["loc"])) or "engine"
                raise BundleError(f"engine override {where}: {first['msg'].removeprefix('Value error, ')}") from None
        return Engine(self.module, config, input_shape=self.input_shape)


def open_bundle(path: str | Path, *, trust_code: bool | None = None, digest: str | None = None) -> Bundle:
    """Verify ``path`` (manifest digest, format version, every file's checksum) and rebuild its module; no engine yet.

    ``trust_code``: build a user-model factory the bundle names (``None``: only if
    ``LEPTON_TUNE_TRUST_CODE=1``). ``digest``: the ``lepton.sha256`` printed at export; a bundle whose
    manifest has another digest is refused.

    Example:
        >>> b = open_bundle("bundle/")  # doctest: +SKIP
        >>> b.config.shards, b.classes[:3]  # doctest: +SKIP
        (2, ['0', '1', '2'])

    Raises:
        BundleError: see :func:`read_manifest`; the engine section is not a valid EngineConfig; or
            the bundle names a user factory and ``trust_code`` is not set.
    """
    from pydantic import ValidationError

    root = Path(path)
    manifest = read_manifest(root, digest=digest)
    try:
        config = EngineConfig(**manifest["engine"])
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise BundleError(
            f"{root / 'lepton.yaml'}: engine.{'.'.join(map(str, first['loc']))}: "
            f"{first['msg'].removeprefix('Value error, ')}"
        ) from None
    module = load_served(root, manifest, trust_code=trust_code)
    return Bundle(root=root, manifest=manifest, module=module, config=config)


def load_bundle(
    path: str | Path, *, trust_code: bool | None = None, digest: str | None = None, **overrides: Any
) -> Engine:
    """Load a production bundle and return its Engine, started and ready to serve.

    The bundle's files are checked against their SHA-256 first, the weights are loaded with
    ``weights_only=True``, and the engine uses the EngineConfig the trial was measured with
    (``overrides`` replace fields, e.g. ``request_timeout_s=5``). Close it when done (or use ``with``).
    ``trust_code`` and ``digest``: see :func:`open_bundle`.

    Example:
        >>> import lepton_tune
        >>> with lepton_tune.load_bundle("bundle/") as engine:  # doctest: +SKIP
        ...     engine.predict(images).argmax(1)

    Raises:
        BundleError: missing or tampered file, newer format version, weights that do not fit.
        EngineError: the engine cannot start here (e.g. more shards x threads than usable cores).
    """
    engine = open_bundle(path, trust_code=trust_code, digest=digest).engine(**overrides)
    try:
        return engine.start()
    except BaseException:
        engine.close()
        raise
