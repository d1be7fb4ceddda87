"""The llama.cpp stand-in itself: starts on a free port, serves the OpenAI API, stops cleanly."""
from __future__ import annotations

import json
import urllib.request

import pytest

from standins.llama import MODEL_PATH, LlamaServer, LlamaServerError


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_session_server_answers_the_openai_api(llama_server):
    assert llama_server.url.startswith("http://127.0.0.1:") and llama_server.url.endswith("/v1")
    props = llama_server.props()
    assert props["total_slots"] == 1
    assert props["default_generation_settings"]["n_ctx"] == llama_server.n_ctx
    with urllib.request.urlopen(llama_server.url + "/models", timeout=10) as r:
        assert json.loads(r.read())["data"][0]["meta"]["n_ctx"] == llama_server.n_ctx
    out = _post(llama_server.url + "/chat/completions",
                {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8})
    choice = out["choices"][0]
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    assert out["usage"]["completion_tokens"] <= 8


def test_own_server_stops_cleanly_and_a_bad_model_is_named(tmp_path):
    with LlamaServer(n_ctx=256) as srv:
        proc = srv._proc
        assert srv.alive()
    assert proc.returncode == 0          # SIGTERM: a clean exit, not a kill
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"junk")
    with pytest.raises(LlamaServerError, match="exited with status"):
        LlamaServer(n_ctx=256, model_path=str(bad)).start()
    with pytest.raises(LlamaServerError, match="model file not found"):
        LlamaServer(model_path=str(tmp_path / "missing.gguf")).start()
    assert MODEL_PATH.endswith(".gguf")
