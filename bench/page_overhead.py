"""Benchmark: what a page open on the dashboard costs the run training beside it.

The dashboard trains in the server's own process, so every script run of a page (a live
refresh every 2 s on Runs) shares the interpreter with the trainer. This starts
`streamlit run app.py` on a store in a temporary folder and trains the same run in it
several times, alternating (each kind first in turn): with no page open (the worker
started by one visit to Home, that tab closed) and with the Runs page open on the run in
Chromium (its live view refreshing). It prints each run's epoch seconds, then the median
epoch of each kind (the first epoch of each run left out: it traces the training step)
and the ratio open/closed. 1.0 means a watched run trains as fast as an unwatched one.

    python bench/page_overhead.py                       # seed-part2, 10,000 images, 3 epochs, 2 rounds
    python bench/page_overhead.py --limit 5000 --rounds 3

Real CIFAR-100 is used when found (`--data`, LSC_DATA, or ../shared/data/cifar100.npz);
else tiny synthetic data. Timings on a loaded machine are noisy.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_timing import (  # noqa: E402
    CHROMIUM, CHROMIUM_ARGS, VIEWPORT, _free_port, find_data, start_server, wait_idle)

from lsc_core.config import preset  # noqa: E402
from lsc_core.store import ACTIVE_STATES, COMPLETED, Store  # noqa: E402


def train_once(store: Store, config, page_url: str | None, browser) -> list[float]:
    """Queue `config` on the server and wait for its end, with the Runs page open on it when
    `page_url` is given; returns its epochs' seconds."""
    run_id = store.create_run(config)
    context = page = None
    if page_url is not None:
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.goto(f"{page_url}/runs?run={run_id}")
    deadline = time.time() + 3600
    while store.get_run(run_id).status in ACTIVE_STATES:
        if time.time() > deadline:
            raise SystemExit(f"run {run_id} did not end within an hour")
        if page is not None:
            page.wait_for_timeout(500)  # the page's live view goes on refreshing meanwhile
        else:
            time.sleep(0.5)
    if context is not None:
        context.close()
    run = store.get_run(run_id)
    if run.status != COMPLETED:
        raise SystemExit(f"run {run_id} ended {run.status}: {run.error}")
    return [row["seconds"] for row in store.epochs(run_id)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="seed-part2", help="the network trained (default: seed-part2)")
    parser.add_argument("--limit", type=int, default=10_000, help="training images per epoch (default: 10,000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run, the first left out (default: 3)")
    parser.add_argument("--rounds", type=int, default=2, help="runs with no page and with a page, each (default: 2)")
    parser.add_argument("--data", help="CIFAR-100 (default: LSC_DATA, ../shared/data/cifar100.npz, else synthetic)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch of each run is left out")

    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="lsc-page-overhead-"))
    data_path = find_data(args.data, home)
    db = home / "runs.sqlite"
    store = Store(db)
    config = preset(args.preset, label_mode="coarse", epochs=args.epochs, limit=args.limit)
    port = _free_port()
    server = start_server(db, data_path, home, port)
    url = f"http://127.0.0.1:{port}"
    epochs = {"no page": [], "Runs page open": []}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            visit = browser.new_page(viewport=VIEWPORT)  # starts the server's worker, then goes
            visit.goto(url)
            wait_idle(visit)
            visit.close()
            kinds = [("no page", None), ("Runs page open", url)]
            for round_number in range(1, args.rounds + 1):
                for kind, page_url in kinds if round_number % 2 else kinds[::-1]:  # each first in turn
                    seconds = train_once(store, config.replace(name=f"{kind} {round_number}"), page_url, browser)
                    epochs[kind] += seconds[1:]
                    print(f"round {round_number}, {kind}: epochs " + ", ".join(f"{s:.2f}" for s in seconds) + " s",
                          flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    closed, opened = (statistics.median(epochs[kind]) for kind in ("no page", "Runs page open"))
    print(f"{args.preset}, {args.limit:,} images: median epoch {closed:.2f} s with no page, {opened:.2f} s with the "
          f"Runs page open; ratio open/closed {opened / closed:.3f}")


if __name__ == "__main__":
    main()
