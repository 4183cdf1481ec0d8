"""S3 requests per Zarr chunk read: s3fs' defaults against the store options of ``smci_dask.io.zarr_store``.

s3fs (2026.9 here; earlier releases not checked) sends a HEAD before every whole-object GET when its
``max_concurrency`` is above 1 (the default is 10), to decide whether to
split a large object into concurrent ranged GETs. Zarr chunks are small, so
the HEAD only doubles the requests of every chunk read. ``zarr_store`` sets
``max_concurrency: 1`` for S3 stores (unless the storage options say
otherwise); this script counts the requests the S3 server receives and
times the reads both ways.

One array of ``--chunks`` chunks (64 x 64 float32 each, one per day, like
the product's day chunks of a small tile) is written to moto's S3 server
(its own process, its request log counted) and read whole, in rounds that
alternate the order of the two options. Prints one JSON line.

Usage: python benchmarks/bench_s3_requests.py [--chunks 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.storage import FsspecStore

from smci_dask.io import Store
from smci_dask.io.arrays import zarr_store

FAKE = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _requests(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if " HTTP/1." in line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=400, help="chunks of the array (each 64 x 64 float32)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each reads the array once per option")
    args = ap.parse_args()
    os.environ.update(FAKE)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "moto.log"
        with log.open("w") as out:
            server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
        try:
            endpoint = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("moto's S3 server did not start") from None
                    time.sleep(0.1)
            store = Store.from_url("s3://bench-s3-requests/root", {"endpoint_url": endpoint})
            store.fs.mkdir("bench-s3-requests")
            array = zarr.create_array(zarr_store(store, "a.zarr"), shape=(args.chunks, 64, 64), chunks=(1, 64, 64), dtype="f4")
            array[:] = np.random.default_rng(0).random((args.chunks, 64, 64), dtype=np.float32)

            def plain() -> zarr.abc.store.Store:  # s3fs' own defaults (max_concurrency 10), as zarr's docs open S3
                opts = {"endpoint_url": endpoint, "use_listings_cache": False, "skip_instance_cache": True}
                return FsspecStore.from_url(store.url_of("a.zarr"), storage_options=opts, read_only=True)

            def ours() -> zarr.abc.store.Store:
                return zarr_store(store, "a.zarr", read_only=True)

            seconds: dict[str, list[float]] = {"s3fs defaults": [], "zarr_store": []}
            counts: dict[str, list[int]] = {"s3fs defaults": [], "zarr_store": []}
            for r in range(args.repeats):
                order = [("s3fs defaults", plain), ("zarr_store", ours)]
                for label, make in order if r % 2 == 0 else order[::-1]:
                    before = _requests(log)
                    t0 = time.perf_counter()
                    values = zarr.open_array(make(), mode="r")[:]
                    seconds[label].append(time.perf_counter() - t0)
                    time.sleep(0.5)  # let the server flush its log
                    counts[label].append(_requests(log) - before)
                    assert values.shape == (args.chunks, 64, 64)
        finally:
            server.terminate()
            server.wait(timeout=30)
    med = {k: float(np.median(v)) for k, v in seconds.items()}
    per_chunk = {k: round(float(np.median(v)) / args.chunks, 2) for k, v in counts.items()}
    figures = {
        "requests per chunk read, s3fs defaults": {"value": per_chunk["s3fs defaults"], "unit": "requests"},
        "requests per chunk read, zarr_store": {"value": per_chunk["zarr_store"], "unit": "requests"},
        "read time, s3fs defaults": {"value": round(med["s3fs defaults"], 2), "unit": "s", "chunks": args.chunks},
        "read time, zarr_store": {"value": round(med["zarr_store"], 2), "unit": "s", "chunks": args.chunks},
        "read time ratio, s3fs defaults / zarr_store": {"value": round(med["s3fs defaults"] / med["zarr_store"], 2), "unit": "ratio"},
    }
    print(json.dumps({"name": "s3_requests", "cores": os.cpu_count(), "figures": figures}))


if __name__ == "__main__":
    main()
