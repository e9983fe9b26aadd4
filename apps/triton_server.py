"""A Triton Inference Server for avlive clients, from the ``nvidia-pytriton`` wheel, in its own venv.

    python -m apps.triton_server --setup ~/.cache/avlive/triton-venv     # once: a venv with the server
    python -m models.export models/demo/labeler/model.onnx --triton triton-repo --triton-backend python
    python -m apps.triton_server --serve triton-repo                      # gRPC on 8001, HTTP 8000, metrics 8002
    avlive --backend triton --triton-url 127.0.0.1:8001 --labeler labeler --localizer none   # on each client

The Triton server binary ships inside the ``nvidia-pytriton`` wheel (manylinux_2_35, x86-64 and
aarch64). It needs ``numpy < 2`` beside it, so it lives in a virtual environment of its own
(``--setup DIR``), never in avlive's. That build carries the Python backend only (no ONNX Runtime
or TensorRT backend), so repositories for it are written with ``--triton-backend python``
(models/export/triton.py: ``model.py`` runs ``model.onnx`` with ONNX Runtime, which ``--setup``
installs into the venv). A full Triton build (NVIDIA's container) serves the default
``onnxruntime`` and the ``tensorrt`` repositories as they are.

``--serve`` finds the server in the venv (``--venv DIR``, else ``$AVLIVE_TRITON_VENV``, else
``~/.cache/avlive/triton-venv``), starts it on the repository with the ports given, and waits
until it answers; Ctrl-C stops it. tests/test_triton.py starts one the same way
(:func:`start_server`) and skips, naming the setup command, where none is installed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: Where the server's venv is looked for when neither ``--venv`` nor the variable says.
DEFAULT_VENV = Path.home() / ".cache" / "avlive" / "triton-venv"
#: The variable naming the server's venv.
VENV_VARIABLE = "AVLIVE_TRITON_VENV"
#: What ``--setup`` installs (numpy < 2: the wheel's server and stub are built against numpy 1).
SETUP_PACKAGES = ("nvidia-pytriton==0.7.0", "numpy<2", "onnxruntime")


class ServerSetupError(RuntimeError):
    """No usable server installation; the message is one line naming the setup command."""


@dataclass(frozen=True)
class ServerInstall:
    """A Triton server found in a venv.

    Attributes:
        venv: The virtual environment.
        binary: ``.../pytriton/tritonserver/bin/tritonserver``.
        root: ``.../pytriton/tritonserver`` (``backends/``, ``lib/``, ``external_libs/``).
        backends: The backends it has (folder names under ``backends/``).
    """

    venv: Path
    binary: Path
    root: Path
    backends: tuple[str, ...]


def venv_path(venv: str | os.PathLike | None = None) -> Path:
    """``venv``, else ``$AVLIVE_TRITON_VENV``, else :data:`DEFAULT_VENV`."""
    return Path(venv or os.environ.get(VENV_VARIABLE) or DEFAULT_VENV).expanduser()


def setup_command(venv: Path | None = None) -> str:
    return f"python -m apps.triton_server --setup {venv or DEFAULT_VENV}"


def find_server(venv: str | os.PathLike | None = None) -> ServerInstall:
    """The server installed in the venv.

    Raises:
        ServerSetupError: no venv, or no ``tritonserver`` in it (names the setup command).
    """
    root_venv = venv_path(venv)
    found = sorted(root_venv.glob("lib/python3*/site-packages/pytriton/tritonserver/bin/tritonserver"))
    if not found:
        raise ServerSetupError(f"no Triton server in {root_venv} (looked for lib/python3*/site-packages/pytriton/"
                               f"tritonserver/bin/tritonserver); set one up: {setup_command(root_venv)}, or point "
                               f"{VENV_VARIABLE} at a venv that has nvidia-pytriton")
    binary = found[0]
    root = binary.parent.parent
    backends = tuple(sorted(p.name for p in (root / "backends").iterdir() if p.is_dir())) \
        if (root / "backends").is_dir() else ()
    return ServerInstall(root_venv, binary, root, backends)


def venv_python_version(venv: Path) -> str:
    """``"3.11"``: the Python version of a venv (from its ``lib/python3.X`` folder)."""
    found = sorted(p.name for p in (venv / "lib").glob("python3.*"))
    if not found:
        raise ServerSetupError(f"{venv} is not a Python virtual environment (no lib/python3.*)")
    return found[-1].removeprefix("python")


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{venv_python_version(venv)}" / "site-packages"


def place_python_stub(install: ServerInstall) -> Path:
    """Put the Python backend's stub for the venv's Python where the backend looks for it.

    The wheel keeps one stub per Python version (``tritonserver/python_backend_stubs/3.X/``);
    Triton's Python backend runs ``backends/python/triton_python_backend_stub``. Copied once.

    Raises:
        ServerSetupError: the wheel has no stub for this Python version (names the ones it has).
    """
    version = venv_python_version(install.venv)
    target = install.root / "backends" / "python" / "triton_python_backend_stub"
    if target.is_file():
        return target
    source = install.root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not source.is_file():
        have = sorted(p.name for p in (install.root / "python_backend_stubs").glob("*"))
        raise ServerSetupError(f"the server in {install.venv} has no Python-backend stub for Python {version} "
                               f"(it has: {', '.join(have) or 'none'}); make the venv with one of those")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    target.chmod(0o755)
    return target


def setup(venv: str | os.PathLike) -> ServerInstall:
    """Create the venv, install :data:`SETUP_PACKAGES` into it (network: PyPI) and place the
    Python backend's stub (:func:`place_python_stub`)."""
    target = Path(venv).expanduser()
    if not (target / "bin" / "python").is_file():
        subprocess.run([sys.executable, "-m", "venv", os.fspath(target)], check=True)
    pip = [os.fspath(target / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *SETUP_PACKAGES], check=True)
    install = find_server(target)
    place_python_stub(install)
    return find_server(target)


def server_env(install: ServerInstall) -> dict[str, str]:
    """The server's environment: its libraries on ``LD_LIBRARY_PATH``, the venv's ``bin`` first on
    ``PATH`` and its ``site-packages`` as ``PYTHONPATH`` (the Python backend's stub embeds Python
    and must import the venv's numpy and onnxruntime, not the caller's packages)."""
    env = dict(os.environ)
    libs = [install.root / name for name in ("lib", "external_libs") if (install.root / name).is_dir()]
    libs += sorted(install.root.parent.parent.glob("nvidia_pytriton.libs"))
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*map(os.fspath, libs), env.get("LD_LIBRARY_PATH", "")]).strip(os.pathsep)
    env["PATH"] = os.pathsep.join([os.fspath(install.venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = os.fspath(install.venv)
    env["PYTHONPATH"] = os.fspath(site_packages(install.venv))
    return env


def server_command(install: ServerInstall, repo: str | os.PathLike, *, grpc_port: int = 8001,
                   http_port: int = 8000, metrics_port: int = 8002, address: str = "127.0.0.1") -> list[str]:
    """The ``tritonserver`` command line for ``repo`` on these ports, listening on ``address``
    (127.0.0.1: this machine only; 0.0.0.0 for clients on other machines)."""
    return [os.fspath(install.binary), f"--model-repository={Path(repo).resolve()}",
            f"--backend-directory={install.root / 'backends'}", f"--grpc-port={grpc_port}",
            f"--http-port={http_port}", f"--metrics-port={metrics_port}", f"--grpc-address={address}",
            f"--http-address={address}", "--allow-metrics=true", "--exit-on-error=true", "--log-verbose=0"]


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(install: ServerInstall, repo: str | os.PathLike, *, grpc_port: int, http_port: int,
                 metrics_port: int, log: str | os.PathLike, address: str = "127.0.0.1") -> subprocess.Popen:
    """Start the server in the background, its output to ``log``; see :func:`wait_ready`."""
    if "python" in install.backends:
        place_python_stub(install)
    handle = open(log, "wb")  # noqa: SIM115 - the child owns it until it exits
    try:
        return subprocess.Popen(server_command(install, repo, grpc_port=grpc_port, http_port=http_port,
                                               metrics_port=metrics_port, address=address),
                                env=server_env(install), stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        handle.close()


def wait_ready(proc: subprocess.Popen, url: str, *, timeout_s: float = 120.0, log: str | os.PathLike | None = None
               ) -> None:
    """Wait until the server at ``url`` is ready (all its models loaded).

    Raises:
        ServerSetupError: it exited, or was not ready within ``timeout_s`` (with its log's last line).
    """
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    deadline = time.monotonic() + timeout_s
    client = grpcclient.InferenceServerClient(url=url)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerSetupError(f"tritonserver exited with status {proc.returncode} before it was ready"
                                       f"{_log_tail(log)}")
            try:
                if client.is_server_ready(client_timeout=2.0):
                    return
            except InferenceServerException:
                pass
            time.sleep(0.5)
    finally:
        client.close()
    raise ServerSetupError(f"tritonserver was not ready at {url} within {timeout_s:g} s{_log_tail(log)}")


def _log_tail(log: str | os.PathLike | None) -> str:
    if log is None or not Path(log).is_file():
        return ""
    lines = [line for line in Path(log).read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if " E" in line[:4] or "error" in line.lower()]
    return f"; its log {log} says: {(errors or lines or [''])[-1].strip()[:400]}"


def stop_server(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGINT (Triton unloads its models and exits), then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.triton_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--setup", type=Path, metavar="DIR", help="create DIR, a venv with the server (PyPI)")
    what.add_argument("--serve", type=Path, metavar="REPO", help="serve this model repository until Ctrl-C")
    what.add_argument("--where", action="store_true", help="print where the server is and which backends it has")
    parser.add_argument("--venv", type=Path, default=None,
                        help=f"the server's venv (default: ${VENV_VARIABLE}, else {DEFAULT_VENV})")
    parser.add_argument("--address", default="127.0.0.1",
                        help="where the server listens (default: %(default)s, this machine only; 0.0.0.0 for a fleet)")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=8002)
    args = parser.parse_args(argv)
    try:
        if args.setup is not None:
            install = setup(args.setup)
            print(f"Triton server in {install.venv}: {install.binary} (backends: {', '.join(install.backends)}); "
                  f"export {VENV_VARIABLE}={install.venv}")
            return 0
        install = find_server(args.venv)
        if args.where:
            print(f"{install.binary} (backends: {', '.join(install.backends) or 'none'})")
            return 0
        if not args.serve.is_dir():
            raise ServerSetupError(f"--serve {args.serve}: no such model repository (write one: python -m "
                                   f"models.export MODEL.onnx --triton {args.serve} --triton-backend python)")
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"tritonserver-{args.grpc_port}.log"
        proc = start_server(install, args.serve, grpc_port=args.grpc_port, http_port=args.http_port,
                            metrics_port=args.metrics_port, log=log, address=args.address)
        try:
            wait_ready(proc, f"127.0.0.1:{args.grpc_port}", log=log)
            print(f"Triton serving {args.serve} on {args.address}: gRPC {args.grpc_port} (avlive --backend triton "
                  f"--triton-url 127.0.0.1:{args.grpc_port}), HTTP {args.http_port}, metrics {args.metrics_port}; "
                  f"log {log}; Ctrl-C stops it", flush=True)
            proc.wait()
            return 0 if proc.returncode in (0, -signal.SIGINT) else 1
        except KeyboardInterrupt:
            return 0
        finally:
            stop_server(proc)
    except (ServerSetupError, subprocess.CalledProcessError) as e:
        print(f"triton_server: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
