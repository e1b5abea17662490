"""A map grown by another process (an admin import) is adopted, not fatal."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from ncpaste.core import keys
from ncpaste.store import NewPaste
from ncpaste.store.lmdb_store import LmdbStore
from ncpaste.store.records import pack

NOW = 1_790_000_000_000

SERVER_SIDE = textwrap.dedent(
    """
    import sys
    import ncpaste.store.lmdb_env as lmdb_env
    import ncpaste.store.lmdb_store as lmdb_store
    lmdb_env.INITIAL_MAP_BYTES = 256 * 1024
    from ncpaste.store import NewPaste, codec
    from ncpaste.store.records import pack
    from ncpaste.core import keys
    store = lmdb_store.LmdbStore(sys.argv[1], pool_target=0)
    body = b"first\\n"
    first = store.create_batch(
        [pack(NewPaste(body, keys.token_hash("t"), 3600))], {now}
    )[0]
    print(first.key, flush=True)
    sys.stdin.readline()  # the other process grows the map meanwhile
    for line in sys.stdin:
        key = line.strip()
        paste = store.get(key, {now})
        print("found" if paste and codec.open_body(paste.frame, paste.meta) else "missing", flush=True)
        break
    body = b"after the resize\\n"
    second = store.create_batch(
        [pack(NewPaste(body, keys.token_hash("t"), 3600))], {now}
    )[0]
    print("created" if not isinstance(second, Exception) else repr(second), flush=True)
    """
).replace("{now}", str(NOW))


def test_store_adopts_a_map_grown_by_another_process(tmp_path, monkeypatch):
    data = tmp_path / "data"
    other = subprocess.Popen(
        [sys.executable, "-c", SERVER_SIDE, str(data)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        first_key = other.stdout.readline().strip()
        assert first_key
        import ncpaste.store.lmdb_env as lmdb_env

        monkeypatch.setattr(lmdb_env, "INITIAL_MAP_BYTES", 256 * 1024)
        importer = LmdbStore(data, pool_target=0)
        import random

        rng = random.Random(1)
        bodies = ["".join(f"{rng.getrandbits(128):032x}\n" for _ in range(20000)).encode() for _ in range(4)]
        results = importer.create_batch(
            [pack(NewPaste(b, keys.token_hash("t"), 3600)) for b in bodies],
            NOW,
        )
        grown = importer._env.info()["map_size"]
        importer.close()
        assert grown > 256 * 1024
        other.stdin.write("go\n" + results[0].key + "\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "found"
        assert other.stdout.readline().strip() == "created"
    finally:
        other.stdin.close()
        other.wait(timeout=20)
