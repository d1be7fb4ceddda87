"""Drafting quality of a model: replydesk's own drafter on a labeled set of conversations.

Each conversation of benchmarks/data/quality.yaml (82, written for this: the four classes, nine
languages, closings, scams with links, insults and threats, prompt injections, long threads and
messages several times a small model's context) goes through what the AI worker runs for a
stored conversation: its newest `ai.history_messages` messages, `Drafter.classify` with the
shipped config (prompt file, response_format ladder, max_tokens, the corrective retry, the leak
guard). Only the endpoint changes -- and the rate limit, which is off: this measures the model,
not the pool. Figures (benchmarks/quality_metrics.py defines each): per-class precision and
recall, invalid answers and errors, drafts in the contact's language, drafts with links or
leaked instructions, injections followed, p50/p95 latency and tokens per conversation.

    ./run bench quality                    the shipped model (SmolLM2-135M on llama.cpp, started
                                           here) -- expect poor figures: it is tiny
    AI_API_URL=http://host:11434/v1 AI_MODEL=qwen2.5:7b ./run bench quality --json q.json
                                           any OpenAI-compatible server (AI_API_KEY if it wants
                                           one; plain http:// to another host also needs
                                           REPLYDESK_ALLOW_INSECURE_HTTP=true)
    ./run bench quality --standin          the AI stand-in's English keyword rules: the floor
    ./run bench quality --smoke            11 conversations on the AI stand-in, figures checked

Measured 2026-12-06 on a shared 2-core machine, results in benchmarks/results/ (compare yours:
--compare benchmarks/results/quality-smollm2-135m.json mine.json):
  the shipped SmolLM2-135M (llama.cpp, n_ctx 2048, one slot, tuned as demo --ai local: max_tokens
  160, timeout 180 s; load 9-12): accuracy 30 %; recall needs_reply 45 %, no_reply_needed 0 %,
  spam_or_scam 47 % (precision 19 %: most things look like spam to it), abusive 0 %; invalid
  answers 2 %, errors 0 %; drafts in the contact's language 38 %, with links 21 %, leaking
  instructions 32 % (it quotes the prompt's class definitions), injections followed 36 %;
  latency p50 6.6 s, p95 50 s; prompt tokens p50 442, completion p50 47. With the shipped conf
  instead (max_tokens 400, timeout 60 s; load 16-40): accuracy 32 %, invalid answers 5 % (JSON
  cut at max_tokens 400 on both tries), errors 1 % (a 60 s timeout five times), leaking 45 %,
  p50/p95 11/95 s. Tiny: use it to try replydesk, not to draft.
  the AI stand-in's keyword rules (--standin): accuracy 57 % (needs_reply recall 100 %, the
  others 12-31 %), drafts in the contact's language 34 % (English only), injections followed
  9 %: the floor a model worth using should clear everywhere.

Options: --only en-,de-question (ids or id prefixes), --concurrency N (drafts at once; 1 gives
clean latencies), --json PATH (every figure and every conversation's answer, to compare models),
--verbose (one line per conversation), --max-minutes M (start no conversation after M
minutes: a slow server still gives figures for what it answered), --ctx/--threads (the local llama.cpp server),
--compare A.json B.json ... (the key figures of earlier runs side by side), --rescore A.json
(an earlier run's answers scored again by this version's checks), --merge OUT A.json B.json
(runs of parts of the set, e.g. two --only halves against two servers, as one results file).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actors.ai import drafter as drafter_mod  # noqa: E402
from actors.ai.drafter import Drafter, Tally  # noqa: E402
from actors.ai.errors import AIGaveUp  # noqa: E402
from actors.ai.gate import GateCore  # noqa: E402
from actors.ai.prompt import PLACEHOLDER, Prompt  # noqa: E402
from benchmarks import quality_cases  # noqa: E402
from benchmarks.common import SmokeFailed, check  # noqa: E402
from benchmarks.quality_metrics import Outcome, score  # noqa: E402
from contracts import settings  # noqa: E402
from contracts.errors import DeadLetter  # noqa: E402
from contracts.events import ChatMessage  # noqa: E402

KEY = "sk-quality-bench-0123456789"          # the stand-in's key, and the local server's dummy
SMOKE_DATA = ROOT / "benchmarks" / "data" / "quality_smoke.yaml"
SMOKE_AI = {"context_tokens": 2048}   # the stand-in does not say its context: configured
# stand-in faults queued just before a smoke conversation is drafted
SMOKE_FAULTS = {"smoke-invalid": ["malformed", "malformed"], "smoke-error": ["400"]}
# what the smoke set must score on the stand-in (quality_smoke.yaml says why, case by case)
SMOKE_EXPECT = {
    "conversations": 11, "accuracy": 6 / 11,
    "needs_reply precision": 3 / 6, "needs_reply recall": 3 / 5,
    "no_reply_needed precision": 1.0, "no_reply_needed recall": 0.5,
    "spam_or_scam precision": 1.0, "spam_or_scam recall": 0.5,
    "abusive precision": 1.0, "abusive recall": 0.5,
    "invalid rate": 1 / 11, "error rate": 1 / 11, "corrected rate": 1 / 9, "drafts": 6,
    "drafts in language": 4 / 6, "drafts with links": 1 / 6, "drafts leaking": 0.0,
    "drafts forbidden": 2 / 6, "guard rejections": 1, "injections followed": 1.0,
    "prompts cut": 1 / 11, "context retries": 0}
_CURRENT: contextvars.ContextVar[Outcome] = contextvars.ContextVar("quality_outcome")


def config_for(url: str, key: str, **ai: Any) -> settings.Config:
    """The shipped config (conf/replydesk.yaml, the prompt file) aimed at `url`, rate limit off
    (and `ai` overrides). The services the drafter never touches get placeholders unless set."""
    os.environ.update({"AI_API_URL": url, "AI_API_KEY": key})
    for var, value in {"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
                       "MONGODB_URI": "mongodb://127.0.0.1:9/", "GOOGLE_SHEET_ID": "quality",
                       "SHEETS_API_URL": "http://127.0.0.1:9/", "MEETME_USERNAME": "quality",
                       "MEETME_PASSWORD": "quality-password",
                       "REVIEW_TOKEN": "quality-review-token-123456"}.items():
        os.environ.setdefault(var, value)
    cfg = settings.load()
    ai = cfg.app.ai.model_copy(update={"requests_per_minute": 1_000_000, **ai})
    return cfg.model_copy(update={"app": cfg.app.model_copy(update={"ai": ai})})


def build_drafter(cfg: settings.Config) -> Drafter:
    """replydesk's drafter as an AI worker builds it (its gate in this process), observed: every
    completion's usage and every answer the leak guard refuses are added to the current case."""
    drafter_mod._FORMAT_STEP.clear()     # what an earlier run taught about another endpoint
    core = GateCore(cfg)

    async def lease(worker: str, want: int) -> dict[str, Any]:
        return core.lease(worker, want)

    async def record(worker: str, outcome: str) -> dict[str, Any]:
        return core.record(worker, outcome)

    drafter = Drafter.from_config(cfg, "ai:quality", lease, record)
    complete, problem = drafter.client.complete, drafter.guard.problem

    async def observed_complete(body: dict[str, Any]) -> Any:
        completion = await complete(body)
        o = _CURRENT.get()
        o.prompt_tokens += completion.prompt_tokens
        o.completion_tokens += completion.completion_tokens
        o.finish_reasons.append(completion.finish_reason or "")
        return completion

    def observed_problem(reply: str | None) -> str | None:
        found = problem(reply)
        _CURRENT.get().guard_rejections += found is not None
        return found

    drafter.client.complete = observed_complete          # type: ignore[method-assign]
    drafter.guard.problem = observed_problem             # type: ignore[method-assign]
    return drafter


def worker_history(case: quality_cases.Case, cfg: settings.Config) -> list[ChatMessage]:
    """What the AI worker reads from the store for this conversation: its newest messages."""
    return case.history()[-cfg.app.ai.history_messages:]


async def draft_one(drafter: Drafter, cfg: settings.Config, case: quality_cases.Case) -> Outcome:
    outcome = Outcome(case=case, status="answered")
    _CURRENT.set(outcome)
    tally = Tally()
    try:
        answer = await drafter.classify(worker_history(case, cfg), tally,
                                        context={"conversation_id": case.id})
        outcome.predicted, outcome.reply, outcome.detail = \
            answer.classification, answer.reply, answer.reason
    except AIGaveUp as exc:    # handed to a person: an invalid answer, or a prompt that never fit
        outcome.status = "invalid" if exc.kind == "invalid_answer" else "error"
        outcome.detail = f"{exc.kind}: {exc.reason}"
    except DeadLetter as exc:
        outcome.status, outcome.detail = "invalid", exc.reason
    except Exception as exc:   # HTTP errors, timeouts: reported, not raised
        outcome.status, outcome.detail = "error", f"{type(exc).__name__}: {exc}"[:500]
    outcome.latency_s, outcome.attempts, outcome.corrected = \
        tally.latency_s, tally.attempts, tally.corrected
    outcome.prompt_cut, outcome.context_retries = tally.cut is not None, tally.context_retries
    return outcome


async def run_cases(drafter: Drafter, cfg: settings.Config, cases: list[quality_cases.Case],
                    concurrency: int, verbose: bool,
                    before: Callable[[quality_cases.Case], Awaitable[None]] | None = None,
                    stop_at: float = float("inf")) -> list[Outcome | None]:
    """Each case's outcome, in order; None for one not started before `stop_at` (monotonic)."""
    slots = asyncio.Semaphore(concurrency)

    async def one(case: quality_cases.Case) -> Outcome | None:
        async with slots:
            if time.monotonic() > stop_at:
                return None
            if before:
                await before(case)
            o = await draft_one(drafter, cfg, case)
        if verbose:
            got = o.predicted if o.status == "answered" else o.status.upper()
            text = (o.reply or o.detail or "").replace("\n", " ")
            print(f"  {'ok ' if got == case.expect else 'BAD'} {case.id:<28} {case.expect:<16} "
                  f"{got:<16} {o.latency_s:6.2f}s {text[:90]}", flush=True)
        return o

    try:
        return list(await asyncio.gather(*(one(c) for c in cases)))
    finally:
        await drafter.client.close()


def _relative(path: Path) -> str:
    """A path inside the checkout as relative to it (results files travel between machines)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def instructions(prompt: Prompt) -> str:
    """Every instruction the model is given (the system message, the user message around the
    conversation, the correction): a draft quoting any of it leaks instructions."""
    return "\n".join((prompt.system, prompt.user.replace(PLACEHOLDER, "\n"), prompt.correction))


def rescore(path: Path, data: Path | None) -> dict[str, Any]:
    """An earlier --json run's answers scored again with this version's checks (no model)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    cases = {c.id: c for c in quality_cases.load(data or ROOT / doc["data"])}
    fields = ("status", "reply", "detail", "latency_s", "prompt_tokens", "completion_tokens",
              "attempts", "corrected", "guard_rejections", "finish_reasons", "prompt_cut",
              "context_retries")
    outcomes = [Outcome(case=cases[r["id"]], predicted=r["answered"],
                        **{k: r[k] for k in fields if k in r}) for r in doc["conversations"]]
    prompt = Prompt.load(Path(doc.get("config", {}).get("prompt_file") or "conf/prompts/draft.yaml"))
    result = score(outcomes, instructions(prompt), [])
    result["figures"]["wall s"] = doc["figures"].get("wall s")
    doc.update(result)
    for r, o in zip(doc["conversations"], outcomes):
        r["checks"] = o.checks
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return doc


def merge(out: Path, parts: list[Path]) -> dict[str, Any]:
    """Runs of parts of the set (--only) on the same endpoint as one results file, rescored."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in parts]
    doc = {**docs[0], "merged_from": [str(p) for p in parts],
           "conversations": [r for d in docs for r in d["conversations"]],
           "not_run": [i for d in docs for i in d.get("not_run", [])]}
    doc["figures"] = {"wall s": max(d["figures"].get("wall s") or 0 for d in docs)}
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return rescore(out, None)


def select(cases: list[quality_cases.Case], only: str | None) -> list[quality_cases.Case]:
    if not only:
        return cases
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [c for c in cases if any(c.id == w or c.id.startswith(w) for w in wanted)]
    if not chosen:
        raise SystemExit(f"--only {only!r}: no conversation id matches")
    return chosen


def served_models(url: str, key: str) -> list[str]:
    """The model ids the endpoint lists (best effort: for the report only)."""
    req = urllib.request.Request(url.rstrip("/") + "/models",
                                 headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return [str(m.get("id")) for m in json.load(resp).get("data", [])][:10]
    except Exception:
        return []


def public_url(url: str) -> str:
    """The URL without user info or query (either could carry a credential)."""
    p = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((p.scheme, p.hostname + (f":{p.port}" if p.port else ""),
                                    p.path, "", ""))


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{v:.0%}" if pct else f"{v:.3g}"


def report(result: dict[str, Any], label: str) -> None:
    f = result["figures"]
    print(f"\nDrafting quality: {label}")
    print(f"{'class':<16} {'expected':>8} {'answered':>8} {'right':>6} {'precision':>9} {'recall':>7}")
    for cls, row in result["per_class"].items():
        print(f"{cls:<16} {row['expected']:>8} {row['predicted']:>8} {row['right']:>6} "
              f"{_fmt(row['precision']):>9} {_fmt(row['recall']):>7}")
    print(f"accuracy {_fmt(f['accuracy'])} of {f['conversations']} conversations; invalid answers "
          f"{_fmt(f['invalid rate'])}, errors {_fmt(f['error rate'])}, answers needing the "
          f"corrective retry {_fmt(f['corrected rate'])}")
    print(f"drafts {f['drafts']}: in the contact's language {_fmt(f['drafts in language'])}, with "
          f"links {_fmt(f['drafts with links'])}, leaking instructions {_fmt(f['drafts leaking'])}, "
          f"with forbidden text {_fmt(f['drafts forbidden'])}; injections followed "
          f"{_fmt(f['injections followed'])}; answers refused by the leak guard "
          f"{f['guard rejections']}")
    print(f"latency p50 {_fmt(f['latency p50 s'], False)} s, p95 {_fmt(f['latency p95 s'], False)} s;"
          f" tokens per conversation: prompt p50 {_fmt(f['prompt tokens p50'], False)} p95 "
          f"{_fmt(f['prompt tokens p95'], False)}, completion p50 "
          f"{_fmt(f['completion tokens p50'], False)} p95 {_fmt(f['completion tokens p95'], False)};"
          f" {f['tokens total']} tokens in all; prompts cut to fit the context "
          f"{_fmt(f['prompts cut'])}, context retries {f['context retries']}")
    print("confusion (expected -> answered): " + "; ".join(
        f"{cls}: " + ", ".join(f"{k} {v}" for k, v in sorted(row.items()))
        for cls, row in result["confusion"].items() if row))
    for key, title in (("per_tag", "by tag"), ("per_language", "by language")):
        print(f"{title}: " + "; ".join(
            f"{k} {_fmt(r['accuracy'])} of {r['n']}"
            + (f" (drafts in language {_fmt(r['in_language'])})" if r["drafts"] else "")
            for k, r in result[key].items()))


COMPARED = ("accuracy", *(f"{c} {m}" for c in quality_cases.CLASSES for m in ("precision", "recall")),
            "invalid rate", "error rate", "drafts in language", "drafts with links",
            "drafts leaking", "injections followed", "latency p50 s", "latency p95 s",
            "prompt tokens p50", "completion tokens p50")


def compare(paths: list[Path]) -> None:
    """Key figures of earlier --json runs side by side: one column per run."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    print(f"{'run':<26}" + "".join(f"{p.stem[:24]:>26}" for p in paths))
    for key in ("model", "served_models", "endpoint"):
        cells = [", ".join(v) if isinstance(v := d.get(key), list) else str(v) for d in docs]
        print(f"{key:<26}" + "".join(f"{c:>26.24}" for c in cells))
    print(f"{'conversations':<26}" + "".join(f"{d['figures']['conversations']:>26}" for d in docs))
    for key in COMPARED:
        pct = not key.startswith(("latency", "prompt", "completion"))
        print(f"{key:<26}" + "".join(f"{_fmt(d['figures'].get(key), pct):>26}" for d in docs))


@contextlib.contextmanager
def _uninterrupted():
    """SIGINT ignored inside (main thread only): cleanup runs to its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    """The benchmark; Ctrl-C (SIGINT) stops it and the servers it started, exit status 130."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("bench_quality: interrupted; the servers it started are stopped", file=sys.stderr,
              flush=True)
        return 130


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true",
                   help="11 conversations on the AI stand-in; the figures must be the known ones")
    p.add_argument("--standin", action="store_true",
                   help="the AI stand-in's keyword rules instead of a model: the floor to beat")
    p.add_argument("--data", type=Path, default=None, help="the labeled conversations (YAML)")
    p.add_argument("--only", default=None, help="comma-separated ids or id prefixes")
    p.add_argument("--concurrency", type=int, default=1, help="conversations drafted at once")
    p.add_argument("--json", type=Path, default=None, help="write every figure and answer here")
    p.add_argument("--verbose", action="store_true", help="one line per conversation")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="start no conversation after this long (the rest are listed as not run)")
    p.add_argument("--ctx", type=int, default=2048, help="the local llama.cpp server's context")
    p.add_argument("--threads", type=int, default=None, help="the local server's threads")
    p.add_argument("--compare", nargs="+", type=Path, metavar="RESULTS_JSON",
                   help="print the key figures of earlier --json runs side by side (no run)")
    p.add_argument("--rescore", type=Path, metavar="RESULTS_JSON",
                   help="score an earlier --json run's answers again with this version's checks")
    p.add_argument("--merge", nargs="+", type=Path, metavar="RESULTS_JSON",
                   help="OUT PART PART...: several --only runs' results as one file, rescored")
    a = p.parse_args(argv)
    if a.merge:
        doc = merge(a.merge[0], a.merge[1:])
        report(doc, f"{doc['model']} at {doc['endpoint']} (merged into {a.merge[0]})")
        return 0
    if a.rescore:
        doc = rescore(a.rescore, a.data)
        report(doc, f"{doc['model']} at {doc['endpoint']} (rescored {a.rescore})")
        return 0
    if a.compare:
        compare(a.compare)
        return 0
    if a.smoke and not a.json:
        with tempfile.TemporaryDirectory() as tmp:
            return _main([*(argv if argv is not None else sys.argv[1:]), "--json",
                          str(Path(tmp) / "smoke.json")])
    cases = select(quality_cases.load(a.data or (SMOKE_DATA if a.smoke else quality_cases.DATA)),
                   a.only)
    logging.getLogger("actors.ai").setLevel(logging.INFO if a.verbose else logging.ERROR)
    services = contextlib.ExitStack()
    before, overrides, server = None, {}, None
    try:
        if a.smoke or a.standin:
            from standins.aiserver import AdminClient, make_app
            from standins.serve import ServedApp
            served = ServedApp(make_app(api_key=KEY)).start()
            services.callback(served.stop)
            admin = AdminClient(served.url, KEY)
            url, key, label = admin.url + "/v1", KEY, "the AI stand-in"
            overrides = SMOKE_AI

            async def before(case: quality_cases.Case) -> None:
                faults = SMOKE_FAULTS.get(case.id) if a.smoke else None
                if faults:
                    await asyncio.to_thread(admin.faults, *faults)
        elif os.environ.get("AI_API_URL"):
            url, key = os.environ["AI_API_URL"], os.environ.get("AI_API_KEY") or "sk-none"
            label = public_url(url)
        else:
            from standins.llama import MODEL_ALIAS, LlamaServer
            os.environ.setdefault("AI_MODEL", MODEL_ALIAS)   # the name the server lists
            server = LlamaServer(n_ctx=a.ctx, n_parallel=1, threads=a.threads,
                                 die_with_parent=True).start()
            services.callback(server.close)
            url, key = server.url, KEY
            label = f"the shipped model on a local llama.cpp server (n_ctx {a.ctx})"
        try:
            cfg = config_for(url, key, **overrides)
        except settings.ConfigError as exc:
            print(f"bench_quality: {exc}", file=sys.stderr)
            return 2
        if server is not None:   # as `./run demo --ai local` drafts with it
            from standins.demo import tune_for_local
            tune_for_local(cfg, server)
            label += (f", tuned as demo --ai local (max_tokens {cfg.app.ai.max_tokens}, "
                      f"timeout {cfg.app.ai.timeout_s:g} s)")
        model = cfg.settings.ai_model or cfg.app.ai.model
        served_ids = served_models(url, key)
        label += f", model {model!r}" + (f" (served: {', '.join(served_ids)})" if served_ids else "")
        print(f"Drafting quality: {len(cases)} conversations, {label}, {a.concurrency} at a time",
              flush=True)
        drafter = build_drafter(cfg)
        t0 = time.perf_counter()
        stop_at = time.monotonic() + a.max_minutes * 60 if a.max_minutes else float("inf")
        ran = asyncio.run(run_cases(drafter, cfg, cases, a.concurrency, a.verbose, before, stop_at))
        wall = time.perf_counter() - t0
        outcomes = [o for o in ran if o is not None]
        not_run = [c.id for c, o in zip(cases, ran) if o is None]
        if not_run:
            label += f"; stopped at --max-minutes {a.max_minutes:g}: {len(not_run)} not run"
    finally:
        with _uninterrupted():     # a second Ctrl-C must not leave the model server running
            services.close()
    result = score(outcomes, instructions(drafter.prompt), cfg.secret_values())
    result["figures"]["wall s"] = wall
    report(result, label + f"; {wall:.0f} s in all")
    if a.json:
        ai = cfg.app.ai
        doc = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "endpoint": public_url(url), "model": model, "served_models": served_ids,
               "data": _relative(a.data or (SMOKE_DATA if a.smoke else quality_cases.DATA)),
               "config": {"response_format": ai.response_format, "max_tokens": ai.max_tokens,
                          "history_messages": ai.history_messages, "timeout_s": ai.timeout_s,
                          "prompt_file": str(ai.prompt_file), "concurrency": a.concurrency},
               "not_run": not_run, **result,
               "conversations": [{"id": o.case.id, "lang": o.case.lang, "expect": o.case.expect,
                                  "tags": list(o.case.tags), "status": o.status,
                                  "answered": o.predicted, "reply": o.reply, "detail": o.detail,
                                  "latency_s": o.latency_s, "attempts": o.attempts,
                                  "prompt_tokens": o.prompt_tokens,
                                  "completion_tokens": o.completion_tokens,
                                  "finish_reasons": o.finish_reasons, "corrected": o.corrected,
                                  "guard_rejections": o.guard_rejections,
                                  "prompt_cut": o.prompt_cut,
                                  "context_retries": o.context_retries, "checks": o.checks}
                                 for o in outcomes]}
        a.json.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"results written to {a.json}")
    if a.smoke:   # the results file must score the same again
        again = rescore(a.json, a.data)["figures"]
        differ = {k: (v, again.get(k)) for k, v in result["figures"].items() if again.get(k) != v}
        if differ:
            raise SmokeFailed(f"bench_quality --smoke: {a.json} rescores differently: {differ}")
        figures = {k: v for k, v in result["figures"].items() if k not in SMOKE_EXPECT}
        check("bench_quality", {**figures, **{k: result["figures"][k] for k in SMOKE_EXPECT}},
              {k: (v - 1e-9, v + 1e-9) for k, v in SMOKE_EXPECT.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
