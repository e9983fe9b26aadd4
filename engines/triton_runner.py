"""Triton backend: a model served by Triton Inference Server, reached through tritonclient's gRPC API.

Many ``avlive`` clients (one per camera) share one server; each sends its windows as requests
(batch 1 from a live stream), and the server's dynamic batcher gathers the requests of all
clients into batches (``dynamic_batching`` in the ``config.pbtxt`` that
``python -m models.export MODEL --triton REPO`` writes, models/export/triton.py).

A client needs no file of the model: :func:`server_metadata` reads the model's sidecar from the
server, where the export put it (the ``avlive_metadata`` parameter of the model's config), and
:class:`TritonRunner` cross-checks it against the tensors the server reports. Errors are one
line each: no server at the URL (names the URL and how to start one), a model the server does
not have (lists the ones it has), a model without avlive metadata (how to export it).

``tritonclient`` is imported only inside functions (the ``triton`` extra of pyproject.toml);
where it is missing, :func:`require_tritonclient` raises ``RuntimeError(TRITON_MISSING)``.

Example (a server from ``python -m apps.triton_server --serve triton-repo``)::

    with TritonRunner("labeler", url="127.0.0.1:8001") as runner:
        out = runner.infer({"audio": wave[None]})      # {'probs': (1, 12) float32}
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from engines.base import BaseRunner, check_io_against_metadata
from models.core.metadata import MetadataMismatch, ModelMetadata, TensorSpec
from models.export.triton import METADATA_PARAMETER

__all__ = [
    "DEFAULT_TRITON_URL",
    "TRITON_MISSING",
    "METADATA_PARAMETER",
    "TritonServerError",
    "TritonRunner",
    "require_tritonclient",
    "server_metadata",
    "batch_statistics",
]

#: Where ``--triton-url`` points by default: a server on this machine, gRPC port.
DEFAULT_TRITON_URL = "127.0.0.1:8001"

#: The message (and RuntimeError) when tritonclient cannot be imported.
TRITON_MISSING = "tritonclient is not installed: pip install -e '.[triton]' (or pip install 'tritonclient[grpc]')"

#: How to start a server, for the error lines.
START_SERVER = ("start one: python -m apps.triton_server --serve REPO_DIR (a repository written by python -m "
                "models.export MODEL --triton REPO_DIR), or point --triton-url at yours")


class TritonServerError(RuntimeError):
    """The server is not there, lacks the model, or failed a request; the message is one line."""


def require_tritonclient() -> Any:
    """Import and return ``tritonclient.grpc``.

    Raises:
        RuntimeError: :data:`TRITON_MISSING` (the import error chained as the cause).
    """
    try:
        import tritonclient.grpc as grpcclient
    except ImportError as exc:
        raise RuntimeError(TRITON_MISSING) from exc
    return grpcclient


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None)
    text = text() if callable(text) else text or str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _connect(url: str, timeout_s: float) -> Any:
    """A gRPC client to a live server at ``url``.

    Raises:
        TritonServerError: nothing answers there (names the URL and how to start a server).
    """
    grpcclient = require_tritonclient()
    from tritonclient.utils import InferenceServerException

    try:
        client = grpcclient.InferenceServerClient(url=url)
    except Exception as exc:  # a malformed URL is refused here
        raise TritonServerError(f"--triton-url {url}: not a HOST:PORT tritonclient can use ({_first_line(exc)})") \
            from None
    try:
        live = client.is_server_live(client_timeout=timeout_s)
    except InferenceServerException as exc:
        client.close()
        raise TritonServerError(f"no Triton server answers at {url} ({_first_line(exc)}); {START_SERVER}") from None
    if not live:
        client.close()
        raise TritonServerError(f"the Triton server at {url} says it is not live; {START_SERVER}")
    return client


def _require_model(client: Any, url: str, model: str, timeout_s: float) -> None:
    """Raise :class:`TritonServerError` listing the server's models when ``model`` is not ready."""
    from tritonclient.utils import InferenceServerException

    try:
        if client.is_model_ready(model, client_timeout=timeout_s):
            return
    except InferenceServerException:  # some servers answer an unknown model with an error, not "not ready"
        pass
    try:
        entries = client.get_model_repository_index(client_timeout=timeout_s).models
    except InferenceServerException as exc:
        raise TritonServerError(f"model {model!r} is not ready on the Triton server at {url}, which does not list "
                                f"its models ({_first_line(exc)})") from None
    shown = ", ".join(f"{m.name} ({m.state or 'not loaded'}{': ' + m.reason if m.reason else ''})" for m in entries)
    have = f"it has: {shown}" if shown else "it has no models"
    raise TritonServerError(f"model {model!r} is not ready on the Triton server at {url}; {have} (export one: "
                            f"python -m models.export MODEL.onnx --triton REPO_DIR --triton-name {model})")


def _metadata_from_config(client: Any, url: str, model: str, timeout_s: float) -> ModelMetadata:
    config = client.get_model_config(model, client_timeout=timeout_s).config
    if METADATA_PARAMETER not in config.parameters:
        raise TritonServerError(f"model {model!r} on the Triton server at {url} carries no avlive metadata (parameter "
                                f"{METADATA_PARAMETER!r}); write its repository with python -m models.export MODEL.onnx "
                                f"--triton REPO_DIR")
    try:
        return ModelMetadata.from_json(config.parameters[METADATA_PARAMETER].string_value)
    except ValueError as exc:
        raise TritonServerError(f"model {model!r} on the Triton server at {url}: its avlive metadata is invalid "
                                f"({_first_line(exc)})") from None


def server_metadata(url: str, model: str, *, timeout_s: float = 10.0) -> ModelMetadata:
    """The sidecar of ``model`` as the server at ``url`` holds it.

    Raises:
        RuntimeError: :data:`TRITON_MISSING`.
        TritonServerError: no server, no such model, or no avlive metadata (one line each).
    """
    from tritonclient.utils import InferenceServerException

    client = _connect(url, timeout_s)
    try:
        _require_model(client, url, model, timeout_s)
        return _metadata_from_config(client, url, model, timeout_s)
    except InferenceServerException as exc:
        raise TritonServerError(f"the Triton server at {url} failed to describe {model!r}: {_first_line(exc)}") \
            from None
    finally:
        client.close()


def batch_statistics(url: str, model: str, *, timeout_s: float = 10.0) -> dict[int, int]:
    """Batch size → how many times the server ran ``model`` at that size (its inference statistics).

    Requests gathered by the dynamic batcher show as sizes above the clients' own batch size.
    """
    client = _connect(url, timeout_s)
    try:
        stats = client.get_inference_statistics(model, client_timeout=timeout_s).model_stats
        return {int(b.batch_size): int(b.compute_infer.count) for s in stats for b in s.batch_stats}
    finally:
        client.close()


def _server_tensors(entries: Sequence[Any], batched: bool) -> list[TensorSpec]:
    from tritonclient.utils import triton_to_np_dtype

    specs = []
    for t in entries:
        dtype = triton_to_np_dtype(t.datatype)
        shape = tuple("dynamic" if int(d) < 0 else int(d) for d in t.shape)
        if batched and (not shape or shape[0] != "dynamic"):
            shape = ("dynamic", *shape)
        specs.append(TensorSpec(t.name, shape, np.dtype(dtype).name if dtype is not None else t.datatype.lower()))
    return specs


class TritonRunner(BaseRunner):
    """Runs a model on a Triton Inference Server over gRPC (tritonclient).

    Args:
        model: The model's name on the server.
        url: The server's gRPC endpoint, ``HOST:PORT`` (default :data:`DEFAULT_TRITON_URL`).
        device: ``"cpu"``: the client side; where the model runs is the server's business.
        metadata: The model's sidecar (default: read from the server, :func:`server_metadata`).
        timeout_s: Seconds a health check or a request may take.
        check_finite: Check outputs for NaN and infinity.
    """

    backend = "triton"

    def __init__(self, model: str, *, url: str = DEFAULT_TRITON_URL, device: str = "cpu",
                 metadata: ModelMetadata | None = None, timeout_s: float = 10.0, check_finite: bool = True) -> None:
        if device != "cpu":
            raise ValueError(f"TritonRunner: the server decides where the model runs (the instance kind of its "
                             f"config.pbtxt); the client takes device='cpu', found {device!r}")
        super().__init__(device=device, name=str(model), check_finite=check_finite)
        self.model = str(model)
        self.url = url
        self.metadata = metadata
        self.timeout_s = float(timeout_s)
        self._client: Any = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[str] = []
        self._max_batch = 0

    def _open(self) -> None:
        from tritonclient.utils import InferenceServerException

        client = _connect(self.url, self.timeout_s)
        try:
            _require_model(client, self.url, self.model, self.timeout_s)
            if self.metadata is None:
                self.metadata = _metadata_from_config(client, self.url, self.model, self.timeout_s)
            config = client.get_model_config(self.model, client_timeout=self.timeout_s).config
            self._max_batch = int(config.max_batch_size)
            served = client.get_model_metadata(self.model, client_timeout=self.timeout_s)
            where = f"the model {self.model!r} on the Triton server at {self.url}"
            found_in = [_server_tensors(served.inputs, self._max_batch > 0),
                        _server_tensors(served.outputs, self._max_batch > 0)]
            for kind, found, recorded in (("inputs", found_in[0], self.metadata.inputs),
                                          ("outputs", found_in[1], self.metadata.outputs)):
                by_name = {t.name: t for t in found}
                ordered = [by_name[t.name] for t in recorded] if set(by_name) == {t.name for t in recorded} else found
                try:
                    check_io_against_metadata(recorded, ordered, kind=kind, found_in=where,
                                              recorded_in="its avlive metadata")
                except MetadataMismatch as exc:
                    raise TritonServerError(str(exc)) from None
        except InferenceServerException as exc:
            client.close()
            raise TritonServerError(f"the Triton server at {self.url} failed to describe {self.model!r}: "
                                    f"{_first_line(exc)}") from None
        except BaseException:
            client.close()
            raise
        self._client = client
        self._inputs = list(self.metadata.inputs)
        self._outputs = [t.name for t in self.metadata.outputs]

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def _input_metadata(self) -> Mapping[str, TensorSpec]:
        return {s.name: s for s in self._inputs}

    def _output_names(self) -> Sequence[str]:
        return self._outputs

    def _request(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        inputs = []
        for spec in self._inputs:
            array = np.ascontiguousarray(feed[spec.name])
            item = grpcclient.InferInput(spec.name, list(array.shape), np_to_triton_dtype(array.dtype))
            item.set_data_from_numpy(array)
            inputs.append(item)
        outputs = [grpcclient.InferRequestedOutput(name) for name in self._outputs]
        try:
            result = self._client.infer(self.model, inputs, outputs=outputs, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise TritonServerError(f"the Triton server at {self.url} failed a request for {self.model!r}: "
                                    f"{_first_line(exc)}") from None
        return {name: result.as_numpy(name) for name in self._outputs}

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(feed.values()))) if self._max_batch > 0 and feed else 0
        if rows <= self._max_batch:
            return self._request(feed)
        # more rows than the server batches at once: in pieces of max_batch_size
        parts = [self._request({k: v[i:i + self._max_batch] for k, v in feed.items()})
                 for i in range(0, rows, self._max_batch)]
        return {name: np.concatenate([p[name] for p in parts]) for name in self._outputs}
