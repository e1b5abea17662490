"""Which S3 client under trio: httpcore or httpx with botocore's signer, or boto3 in threads?

    .venv/bin/python bench/s3_client_choice.py [--seconds N]

Starts a SeaweedFS (deploy/seaweedfs.sh, free ports) and, in the same run,
drives 32 concurrent create-only PUTs of 1 KiB and then 32 concurrent GETs
through each client for N seconds; prints calls/s and the client's CPU time
per call (the node's cost, which is what limits a node on a small machine;
on loopback it includes the kernel's work for both ends of each send).
The httpx row needs httpx installed (it is not a dependency of ncpaste).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_out  # noqa: E402  (the engine starter)

CONCURRENCY = 32


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(call, seconds: float) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    done = 0
    deadline = trio.current_time() + seconds
    cpu0, t0 = cpu_s(), time.perf_counter()

    async def worker(n: int) -> None:
        nonlocal done
        i = 0
        while trio.current_time() < deadline:
            await call(n, i)
            i += 1
            done += 1

    async with trio.open_nursery() as nursery:
        for n in range(CONCURRENCY):
            nursery.start_soon(worker, n)
    elapsed = time.perf_counter() - t0
    return done / elapsed, (cpu_s() - cpu0) / max(done, 1) * 1e6


async def main(seconds: float, endpoint: str, key: str, secret: str) -> None:
    import boto3
    from botocore.config import Config
    from botocore.credentials import Credentials

    from ncpaste.store.s3_client import CredentialSource, S3Client, S3Location

    body = os.urandom(512).hex().encode()
    run = os.urandom(4).hex()
    location = S3Location.parse(f"s3://bench/choice-{run}?endpoint={endpoint}")
    rows = []
    async with S3Client(location, CredentialSource(Credentials(key, secret))) as client:
        async def put(n: int, i: int) -> None:
            await client.put(f"h/{n}-{i}", body, create_only=True)

        async def get(n: int, i: int) -> None:
            await client.get(f"h/{n}-{i % 50}")

        rows.append(("httpcore + botocore signer (ncpaste)", *await drive(put, seconds), *await drive(get, seconds)))

        try:
            import httpx
        except ImportError:
            httpx = None
        if httpx is not None:
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)) as hx:
                base = f"{endpoint}/bench/choice-{run}/x/"

                async def xput(n: int, i: int) -> None:
                    url = f"{base}{n}-{i}"
                    headers = client._sign("PUT", url, body, {"if-none-match": "*"})
                    (await hx.put(url, content=body, headers=headers)).raise_for_status()

                async def xget(n: int, i: int) -> None:
                    url = f"{base}{n}-{i % 50}"
                    (await hx.get(url, headers=client._sign("GET", url, b"", {}))).raise_for_status()

                rows.append(("httpx + botocore signer", *await drive(xput, seconds), *await drive(xget, seconds)))

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                      region_name="us-east-1",
                      config=Config(max_pool_connections=CONCURRENCY, s3={"addressing_style": "path"}))
    limiter = trio.CapacityLimiter(CONCURRENCY)

    async def bput(n: int, i: int) -> None:
        await trio.to_thread.run_sync(
            lambda: s3.put_object(Bucket="bench", Key=f"choice-{run}/b/{n}-{i}", Body=body, IfNoneMatch="*"),
            limiter=limiter)

    async def bget(n: int, i: int) -> None:
        await trio.to_thread.run_sync(
            lambda: s3.get_object(Bucket="bench", Key=f"choice-{run}/b/{n}-{i % 50}")["Body"].read(),
            limiter=limiter)

    rows.append(("boto3 in 32 worker threads", *await drive(bput, seconds), *await drive(bget, seconds)))
    print(f"\n32 concurrent calls, {seconds:g} s each, SeaweedFS on this machine (same run)\n")
    print("| client | PUT/s | CPU µs per PUT | GET/s | CPU µs per GET |")
    print("|---|---|---|---|---|")
    for name, put_rate, put_cpu, get_rate, get_cpu in rows:
        print(f"| {name} | {put_rate:,.0f} | {put_cpu:,.0f} | {get_rate:,.0f} | {get_cpu:,.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ncpaste-s3c-"))
    engine = scale_out.Seaweed(tmp)
    try:
        creds = engine.start()
        trio.run(main, args.seconds, engine.endpoint, creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
    finally:
        engine.stop()
