"""How fast does the real server answer over loopback, and what does the framework itself cost?

Question: latency (p50/p99) and throughput of the running shoploop server (FastAPI +
uvicorn, one process, the engine loaded) for search, home recommendations and batched
event intake, with a ~50k-product catalog; and the same figures for a bare FastAPI route
that returns a fixed 20-item list, measured in the same run, so the framework's share of
the cost is visible (the named baseline).

Protocol
--------
1. Prepare a fresh shop home (`--reuse-home` keeps the last one): the retrotech catalog
   (`--data-dir`, ~48k products) with the first `--sessions` query sessions as events, or,
   when that directory is absent (or `--generate`), the deterministic demo-shop generator
   with `--products` products.
2. Train the models the home lacks in a separate process (`--train`, timed as
   `training_seconds`), as a shop's retraining job would; then start the server as a
   subprocess (`python benchmarks/serving.py --serve ...`, which runs
   `create_app(build_engine(...))` under uvicorn on 127.0.0.1 and a free port) that loads
   them (`startup_seconds`), so its memory peak is that of serving, not of training.
   `--no-dense` leaves out the MiniLM index (BM25-only search); `--recommender` picks the
   home-feed model. A second subprocess serves the bare FastAPI app on another port.
3. Drive each phase for `--duration` seconds with `--concurrency` client tasks (httpx async,
   keep-alive, one connection per task), in this order: bare route, search (queries drawn
   from the catalog's titles and the session log, k=20, random user ids), autocomplete
   (`/v1/suggest`, k=8, a random 1-12 character prefix of such a query: a shopper typing), home
   recommendations (known and unknown shoppers), category pages (`/v1/browse`, k=24, a random
   category path or ancestor of the catalog, pages 1-3, a fifth sorted by price, known and
   unknown shoppers), event intake (`--batch` events per POST:
   views and clicks of catalog items with fresh event ids, spread over many shoppers so the
   bot detector does not fire). A short warm-up precedes each phase and is not counted.
   Search is also driven at each other client count of `--search-sweep` (default 1, 2, 4,
   8), each on a freshly started server so its caches (query vectors above all) start as
   cold as the first level's: closed-loop clients queue at the server, so p99 rises with
   their number whatever the server does, and the search targets (p99 <= 30 ms *and*
   >= 200 req/s) are judged at the load level with the highest throughput among those that
   keep p99 <= 30 ms. Every level is reported.
4. Record per-request wall latency at the client, requests/s, events/s (intake), and the
   main server's resident memory (VmRSS now, VmHWM peak) after its phases; the memory
   target is judged on the peak.

The client runs on the same 2 cores as the server, and other jobs may be loading the
machine: the load average at start is recorded, and the bare route shows the ceiling that
client + framework impose. Targets (issue 5) on 2 cores: search p99 <= 30 ms and >= 200
requests/s; intake >= 5,000 events/s; server RSS <= 2 GiB.

Outputs JSON + a Markdown table to `benchmarks/results/serving.{json,md}` (or `--out`).

Side runs: `serving_browse.json` measures category pages, which the retrotech catalog cannot
(it has no categories): `--generate --products 50000 --home var/bench-serving-generated
--out benchmarks/results/serving_browse.json` (the committed one with `--reuse-home`, after a
first run had built the home and trained its models). `--browse-ranker stand-in` serves
category pages re-ordered by a learned ranker of the largest size the loop trains (see
`set_browse_ranker`), to measure what that re-ranking costs a page:
`serving_browse_ranker.json`, run back to back with `serving_browse_featured.json` (the same
home and day, `--browse-ranker none`), and `serving_browse_ranker_explain20.json` with
`--ranker-explain-top 20` (every item of the first page explained, the default before it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# the sibling module, also when a test imports this as `benchmarks.serving`
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_io import write_results  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "retrotech"
BENCH_KEY = "bench-admin-key-0000"
TARGETS = {"search_p99_ms": 30.0, "search_rps": 200.0, "intake_events_per_s": 5000.0, "rss_gib": 2.0}


def say(msg: str) -> None:
    print(f"[serving {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------ setup
def prepare_home(args: argparse.Namespace) -> dict[str, Any]:
    from shoploop.data.ingest import import_records
    from shoploop.store.home import open_stores

    home = Path(args.home)
    if not args.reuse_home and home.exists():
        # Intake adds tens of thousands of events (and trending state) to the log: a reused
        # home would make every run measure a different shop.
        import shutil

        shutil.rmtree(home)
    with open_stores(home) as stores:
        if stores.catalog.version > 0 and len(stores.events):
            n = sum(1 for _ in stores.catalog.iter_products())
            say(f"reusing {home}: {n} products, {len(stores.events)} events")
            return {"catalog": "reused", "products": n}
    data_dir = Path(args.data_dir)
    started = time.perf_counter()
    if data_dir.is_dir() and not args.generate:
        from shoploop.data.datasets.retrotech import load_retrotech

        say(f"loading retrotech from {data_dir} (first {args.sessions} sessions)")
        bundle = load_retrotech(data_dir, max_sessions=args.sessions, progress=True)
        source = "retrotech"
    else:
        from shoploop.data.demo import DemoConfig, generate_demo_store

        say(f"generating a demo catalog of {args.products} products")
        n_users = max(20, min(2000, args.products // 20))
        bundle = generate_demo_store(DemoConfig(n_products=args.products, n_users=n_users, days=14, n_bots=0))
        source = "generated"
    products = bundle.products[: args.products] if source == "retrotech" else bundle.products
    with open_stores(home) as stores:
        import_records(products, bundle.events, stores, source=f"bench-{source}", progress=False)
    took = time.perf_counter() - started
    say(f"imported {len(products)} products and {len(bundle.events)} events in {took:.0f} s")
    return {"catalog": source, "products": len(products), "events": len(bundle.events)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_config(args: argparse.Namespace) -> Any:
    from shoploop.engine import EngineConfig, RecommenderSettings, ServingSettings
    from shoploop.retrieval.config import HybridConfig

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return EngineConfig(
        home=Path(args.home),
        search=HybridConfig(
            use_dense=args.dense, embedding_cache_dir=str(ROOT / "var" / "cache" / "embeddings")
        ),
        recommender=RecommenderSettings(kind=args.recommender),
        serving=ServingSettings(
            **({} if args.ranker_explain_top is None else {"ranker_explain_top": args.ranker_explain_top})
        ),
    )


def train_models(args: argparse.Namespace) -> None:
    """Subprocess entry: train whatever models the home lacks, then exit. A shop trains in its
    retraining job (or a first start-up) and serves from the registry; the measured server
    only loads models, so its memory peak is the serving peak, not a training peak."""
    from shoploop.engine import build_engine

    engine = build_engine(engine_config(args)).start(train_if_missing=True, progress=say)
    set_browse_ranker(engine, args.browse_ranker)


def set_browse_ranker(engine: Any, kind: str) -> None:
    """`none`: category pages in the featured order (any learned one is rolled back to none).
    `stand-in`: a learned category-page ranker of the largest size the loop can train (300 trees
    in each of 5 bagged boosters, no early stopping; a real one stops earlier), fitted to a
    synthetic target so its trees grow full: what its re-ranking costs a page, not what it knows."""
    import tempfile

    import numpy as np

    from shoploop.feedback.features import FEATURE_NAMES
    from shoploop.feedback.ltr import LambdaMARTRanker, LearnedRanker, RankerConfig

    registry = engine.stores.registry
    if kind == "none":
        while registry.active("browse_ranker") is not None:
            engine.rollback("browse_ranker", reason="serving benchmark: featured order")
        return
    if registry.active("browse_ranker") is not None:
        return
    rng = np.random.default_rng(0)
    n_lists, size = 400, 24
    X = rng.gamma(2.0, 1.0, (n_lists * size, len(FEATURE_NAMES))).astype(np.float32)
    signal = X[:, 0] + 0.5 * np.sin(3 * X[:, 5]) + 0.3 * X[:, 9] * X[:, 11] + rng.normal(0, 0.5, len(X))
    y = np.digitize(signal, np.quantile(signal, [0.7, 0.9, 0.97]))
    config = RankerConfig(valid_fraction=0.0)
    model = LambdaMARTRanker(config).fit(X, y, np.full(n_lists, size))
    with tempfile.TemporaryDirectory() as tmp:
        LearnedRanker(model).save(Path(tmp))
        version = registry.register("browse_ranker", Path(tmp), metrics={"stand_in": True})
    engine.promote("browse_ranker", version.version, reason="serving benchmark: latency stand-in")
    trees = f"{config.bags} x {config.n_estimators} trees"
    say(f"browse_ranker v{version.version}: a full-size stand-in, {trees}")


def serve_engine(args: argparse.Namespace) -> None:
    """Subprocess entry: the real app (engine + API) under uvicorn."""
    import uvicorn

    from shoploop.api import ApiSettings, create_app
    from shoploop.api.process import limit_malloc_arenas
    from shoploop.engine import build_engine

    limit_malloc_arenas()  # as `shoploop serve` does
    settings = ApiSettings(
        keys={BENCH_KEY: frozenset({"admin"})}, max_batch=5000, max_body_bytes=16 * 1024 * 1024
    )
    app = create_app(build_engine(engine_config(args)), settings)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def serve_bare(args: argparse.Namespace) -> None:
    """Subprocess entry: a bare FastAPI route returning a fixed 20-item list (the baseline)."""
    import uvicorn
    from fastapi import FastAPI

    fixed = {
        "request_id": "0" * 32,
        "items": [{"item_id": f"SKU-{i:05d}", "position": i + 1, "score": 1.0 / (i + 1)} for i in range(20)],
    }
    app = FastAPI()

    @app.get("/bare")
    def bare() -> dict[str, Any]:  # plain def: same threadpool path as the engine routes
        return fixed

    @app.get("/readyz")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def spawn(mode: str, args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), mode, "--port", str(port), "--home", str(args.home)]
    cmd += ["--recommender", args.recommender, "--dense" if args.dense else "--no-dense"]
    cmd += ["--browse-ranker", args.browse_ranker]
    if args.ranker_explain_top is not None:
        cmd += ["--ranker-explain-top", str(args.ranker_explain_top)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def wait_ready(port: int, proc: subprocess.Popen, timeout: float) -> float:
    import httpx

    started = time.perf_counter()
    last = started
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"server not ready after {timeout:.0f} s")
        if time.perf_counter() - last > 15:
            say(f"  waiting for the server (models loading): {time.perf_counter() - started:.0f} s")
            last = time.perf_counter()
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def memory_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


# ------------------------------------------------------------------------------------------ load
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


async def drive(base: str, make_request, duration: float, concurrency: int, warmup: float) -> dict[str, Any]:
    """`concurrency` tasks send requests back to back for `duration` s (after a warm-up)."""
    import httpx

    latencies: list[float] = []
    errors = 0
    units = 0
    measuring = False
    deadline = 0.0

    async def worker(seed: int) -> None:
        nonlocal errors, units
        rng = random.Random(seed)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        headers = {"X-API-Key": BENCH_KEY}
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, headers=headers) as client:
            while time.perf_counter() < deadline:
                method, path, kwargs, n_units = make_request(rng)
                t0 = time.perf_counter()
                response = await client.request(method, path, **kwargs)
                elapsed = time.perf_counter() - t0
                if not measuring:
                    continue
                if response.status_code >= 400:
                    errors += 1
                else:
                    latencies.append(elapsed)
                    units += n_units

    deadline = time.perf_counter() + warmup
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    measuring = True
    started = time.perf_counter()
    deadline = started + duration
    cpu0 = os.times()
    await asyncio.gather(*(worker(1000 + i) for i in range(concurrency)))
    wall = time.perf_counter() - started
    cpu1 = os.times()
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": wall,
        "rps": len(latencies) / wall,
        "units_per_s": units / wall,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "client_cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
    }


def workload(home: Path) -> dict[str, list[str]]:
    """Queries, item ids and user ids taken from the shop itself."""
    from shoploop.store.home import open_stores

    with open_stores(home) as stores:
        products = list(stores.catalog.iter_products())
        queries: list[str] = []
        users: list[str] = []
        for event in stores.events.scan(types=["search", "impression", "click"]):
            q = getattr(event, "query", None)
            if q and len(queries) < 2000:
                queries.append(q)
            if len(users) < 2000 and event.type == "click":
                users.append(event.user_id)
            if len(queries) >= 2000 and len(users) >= 2000:
                break
    rng = random.Random(0)
    for p in rng.sample(products, min(1000, len(products))):
        words = p.title.split()
        queries.append(" ".join(words[: rng.randint(1, min(3, len(words)))]).lower())
    # every category path and each of its ancestors, as a shop's navigation links them
    categories = sorted(
        {" > ".join(p.category_path[:n]) for p in products for n in range(1, len(p.category_path) + 1)}
    )
    return {
        "queries": queries,
        "items": [p.item_id for p in products],
        "users": users or ["nobody"],
        "categories": categories,
    }


def run_async(coro: Any) -> Any:
    """`asyncio.run` in its own thread: the caller may already own an event loop (pytest
    with Playwright's sync API does), and asyncio.run refuses to nest."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as err:  # re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def run_phases(
    args: argparse.Namespace,
    plan: list[tuple[str, str, int]],
    engine_port: int,
    bare_port: int,
    work: dict[str, list[str]],
) -> dict:
    """Drive each (phase name, request kind, clients) of `plan` in order."""
    queries, items, users = work["queries"], work["items"], work["users"]
    categories = work["categories"]

    def bare(rng: random.Random):
        return "GET", "/bare", {}, 1

    def search(rng: random.Random):
        params = {"q": rng.choice(queries)[:200], "k": 20, "user_id": f"bench-{rng.randrange(5000)}"}
        return "GET", "/v1/search", {"params": params}, 1

    def suggest(rng: random.Random):
        # a shopper typing: a prefix of a real query, as the search box asks at every keystroke
        query = rng.choice(queries)[:200]
        prefix = query[: rng.randint(1, max(1, min(len(query), 12)))]
        return "GET", "/v1/suggest", {"params": {"q": prefix, "k": 8}}, 1

    def home(rng: random.Random):
        user = rng.choice(users) if rng.random() < 0.7 else f"new-{rng.randrange(10**6)}"
        return "GET", "/v1/recommendations/home", {"params": {"user_id": user, "k": 20}}, 1

    def browse(rng: random.Random):
        # a shopper on a category page: mostly the first pages, a fifth of them sorted by price
        params: dict[str, Any] = {
            "category": rng.choice(categories),
            "k": 24,
            "page": rng.choice((1, 1, 1, 2, 3)),
        }
        params["user_id"] = rng.choice(users) if rng.random() < 0.7 else f"new-{rng.randrange(10**6)}"
        if rng.random() < 0.2:
            params["sort"] = rng.choice(("price_asc", "price_desc"))
        return "GET", "/v1/browse", {"params": params}, 1

    def intake(rng: random.Random):
        now = datetime.now(UTC).isoformat()
        events = [
            {
                "event_id": uuid.uuid4().hex,
                "type": "view" if rng.random() < 0.7 else "click",
                "user_id": f"intake-{rng.randrange(100_000)}",
                "item_id": rng.choice(items),
                "timestamp": now,
            }
            for _ in range(args.batch)
        ]
        return "POST", "/v1/events", {"json": {"events": events}}, args.batch

    makers = {
        "bare": (bare_port, bare),
        "search": (engine_port, search),
        "suggest": (engine_port, suggest),
        "home": (engine_port, home),
        "browse": (engine_port, browse),
        "intake": (engine_port, intake),
    }
    phases = {}
    for name, kind, clients in plan:
        port, make = makers[kind]
        say(f"phase {name}: {args.duration:.0f} s x {clients} clients")
        result = run_async(
            drive(f"http://127.0.0.1:{port}", make, args.duration, clients, min(2.0, args.duration / 2))
        )
        result["clients"] = clients
        say(
            f"  {result['requests']} requests, {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms,"
            f" p99 {result['p99_ms']:.1f} ms, errors {result['errors']}"
        )
        phases[name] = result
    return phases


def search_slo(phases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The search targets hold together at one load level, or not at all.

    A closed loop of N clients queues N requests at the server, so p99 grows with N whatever
    the server does; the targets ask for both p99 <= 30 ms and >= 200 req/s, i.e. the
    throughput the server sustains while meeting the latency goal. Of the load levels run,
    the one with the most requests/s among those with p99 <= 30 ms is judged (if none meets
    the latency goal, the lowest-p99 level is); every level stays in the table."""
    runs = {name: p for name, p in phases.items() if name.startswith("search")}
    within = [name for name, p in runs.items() if p["p99_ms"] <= TARGETS["search_p99_ms"]]
    if within:
        best = max(within, key=lambda name: runs[name]["rps"])
    else:
        best = min(runs, key=lambda name: runs[name]["p99_ms"])
    p = runs[best]
    note = (
        f"Search targets judged at the load level `{best}` ({p['clients']} clients): the highest "
        f"throughput among levels with p99 <= {TARGETS['search_p99_ms']:.0f} ms"
        if within
        else f"No load level met p99 <= {TARGETS['search_p99_ms']:.0f} ms; judged at the lowest-p99 level "
        f"`{best}` ({p['clients']} clients)"
    ) + "."
    return {"judged": best, "phase": p, "note": note}


# ------------------------------------------------------------------------------------------ report
def effective_explain_top(args: argparse.Namespace) -> int:
    if args.ranker_explain_top is not None:
        return args.ranker_explain_top
    from shoploop.engine.config import ServingSettings

    return ServingSettings().ranker_explain_top


def _ranker_label(cfg: dict[str, Any]) -> str:
    kind = cfg.get("browse_ranker", "none")
    return f"{kind} (explaining its top {cfg['ranker_explain_top']})" if kind == "stand-in" else kind


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        "# Serving benchmark",
        "",
        f"{result['setup']['products']} products ({result['setup']['catalog']}), dense index: "
        f"{cfg['dense']}, recommender: {cfg['recommender']}, "
        f"category-page ranker: {_ranker_label(cfg)}; "
        f"{cfg['concurrency']} concurrent clients, {cfg['duration']:.0f} s per phase, "
        f"intake batches of {cfg['batch']}. Load average at start: {result['load_average_start']}.",
        "",
        "| phase | clients | requests/s | events/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, p in result["phases"].items():
        eps = f"{p['units_per_s']:.0f}" if name == "intake" else ""
        lines.append(
            f"| {name} | {p.get('clients', cfg['concurrency'])} | {p['rps']:.0f} | {eps} | {p['p50_ms']:.1f}"
            f" | {p['p99_ms']:.1f} | {p['errors']} |"
        )
    mem = result["server_memory_mib"]
    lines += [
        "",
        f"Server memory: RSS {mem['rss']:.0f} MiB, peak {mem['peak']:.0f} MiB. "
        f"Training (separate process, models the home lacked): {result['training_seconds']:.0f} s; "
        f"server start-up (load models, replay the event log): {result['startup_seconds']:.0f} s.",
        "",
        "| target | goal | measured | met |",
        "|---|---:|---:|:--:|",
    ]
    for name, row in result["targets"].items():
        lines.append(f"| {name} | {row['goal']} | {row['measured']:.1f} | {'yes' if row['met'] else 'no'} |")
    lines += ["", result["search_slo"]["note"], "", result.get("note", "")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", dest="serve_flag", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", dest="bare_flag", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--train", dest="train_flag", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--home", default=str(ROOT / "var" / "bench-serving"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serving.json"))
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--search-sweep",
        type=lambda text: [int(x) for x in text.split(",") if x.strip()],
        default=[1, 2, 4, 8],
        help="client counts at which search is also driven (comma-separated)",
    )
    parser.add_argument("--batch", type=int, default=500, help="events per intake request")
    parser.add_argument("--products", type=int, default=50_000, help="catalog size cap (generated: exact)")
    parser.add_argument("--sessions", type=int, default=20_000, help="retrotech query sessions to import")
    parser.add_argument(
        "--reuse-home", action="store_true", help="keep the home (and its models) from a last run"
    )
    parser.add_argument("--generate", action="store_true", help="use the demo generator even if data exists")
    parser.add_argument("--dense", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--recommender", default="sasrec", choices=["sasrec", "item_knn", "ease", "popularity"]
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--startup-timeout", type=float, default=3600.0)
    parser.add_argument(
        "--browse-ranker",
        choices=["none", "stand-in"],
        default="none",
        help="category pages in the featured order, or re-ordered by a full-size learned ranker",
    )
    parser.add_argument(
        "--ranker-explain-top",
        type=int,
        default=None,
        help="items of a learned ranker's list explained feature by feature (default: ServingSettings')",
    )
    args = parser.parse_args(argv)
    if args.serve_flag:
        serve_engine(args)
        return {}
    if args.bare_flag:
        serve_bare(args)
        return {}
    if args.train_flag:
        train_models(args)
        return {}

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    load_start = [round(x, 2) for x in os.getloadavg()]
    setup = prepare_home(args)
    logs = Path(args.home)
    say("training the models the home lacks (separate process)")
    started = time.perf_counter()
    trainer = spawn("--train", args, 0, logs / "bench-train.log")
    if trainer.wait() != 0:
        raise RuntimeError(f"training failed, see {logs / 'bench-train.log'}")
    training_seconds = time.perf_counter() - started
    engine_port, bare_port = free_port(), free_port()
    say(f"starting the server (port {engine_port}) and the bare baseline (port {bare_port})")
    server = spawn("--serve", args, engine_port, logs / "bench-server.log")
    bare = spawn("--serve-bare", args, bare_port, logs / "bench-bare.log")
    n = args.concurrency
    try:
        startup = wait_ready(engine_port, server, args.startup_timeout)
        wait_ready(bare_port, bare, 120)
        say(f"server ready after {startup:.0f} s")
        work = workload(Path(args.home))
        plan = [
            ("bare_fastapi", "bare", n),
            ("search", "search", n),
            ("suggest", "suggest", n),
            ("home", "home", n),
            ("browse", "browse", n),
            ("intake", "intake", n),
        ]
        if not work["categories"]:  # nothing to browse (retrotech has no categories)
            say("the catalog has no categories: no category-page phase (run with --generate for one)")
            plan = [step for step in plan if step[1] != "browse"]
        phases = run_phases(args, plan, engine_port, bare_port, work)
        mem = memory_kib(server.pid)
    finally:
        stop(server)
        stop(bare)
    # Every other search load level on a freshly started server: the query-vector cache
    # (and every other cache) starts cold for each level, as it did for the first one;
    # run back to back on one server, later levels were served mostly from that cache.
    for clients in [c for c in args.search_sweep if c != n]:
        port = free_port()
        level = spawn("--serve", args, port, logs / f"bench-server-{clients}.log")
        try:
            wait_ready(port, level, args.startup_timeout)
            phases |= run_phases(args, [(f"search_{clients}_clients", "search", clients)], port, 0, work)
        finally:
            stop(level)
    intake = phases["intake"]
    slo = search_slo(phases)
    search = slo["phase"]
    rss_gib = mem.get("VmHWM", 0) / 1024**2
    result = {
        "benchmark": "serving",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "dense": args.dense,
            "recommender": args.recommender,
            "browse_ranker": args.browse_ranker,
            "ranker_explain_top": effective_explain_top(args),
            "concurrency": args.concurrency,
            "duration": args.duration,
            "batch": args.batch,
        },
        "setup": setup,
        "load_average_start": load_start,
        "cpu_count": os.cpu_count(),
        "training_seconds": training_seconds,
        "startup_seconds": startup,
        "phases": phases,
        "search_slo": slo,
        "server_memory_mib": {"rss": mem.get("VmRSS", 0) / 1024, "peak": mem.get("VmHWM", 0) / 1024},
        "targets": {
            "search_p99_ms": {"goal": "<= 30", "measured": search["p99_ms"], "met": search["p99_ms"] <= 30},
            "search_rps": {"goal": ">= 200", "measured": search["rps"], "met": search["rps"] >= 200},
            "intake_events_per_s": {
                "goal": ">= 5000",
                "measured": intake["units_per_s"],
                "met": intake["units_per_s"] >= 5000,
            },
            "rss_gib": {"goal": "<= 2", "measured": rss_gib, "met": rss_gib <= 2},
        },
        "note": (
            "Client and server share the machine's 2 cores"
            + (
                f"; other jobs were running (load average {load_start} at start), so these are "
                "lower bounds for an idle box."
                if load_start[0] >= 1.0
                else f" and nothing else was running (load average {load_start} at start)."
            )
        ),
    }
    write_results(out, result, markdown(result))
    say(f"wrote {out} and {out.with_suffix('.md')}")
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
