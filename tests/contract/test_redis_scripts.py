"""The many-keys-per-command helpers behave as the plain commands would, on a server and a cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError

from streams.redis_scripts import LuaScript, hmget_many, run_in_order, set_many, sku_tag, slot_groups
from tests.contract.conftest import Backend

pytestmark = [pytest.mark.contract]

# Many SKUs so that a cluster spreads them over every node, plus awkward names.
SKUS = [f"SKU-{i}" for i in range(300)] + ["brace{d}", "100%", "ünï"]


def _key(prefix: str, sku: str) -> str:
    return f"{prefix}:{{{sku_tag(sku)}}}:x"


def test_set_many_then_hmget_many_equal_the_plain_commands(backend: Backend) -> None:
    async def body(store: Any, client: Any) -> None:
        keys = [_key(store.prefix, s) for s in SKUS]
        await set_many(client, SKUS, keys, [f"v-{s}".encode() for s in SKUS], ttl_s=600, per_call=64)
        for sku, key in zip(SKUS[::50], keys[::50], strict=True):
            assert await client.get(key) == f"v-{sku}".encode()
            assert 590 <= await client.ttl(key) <= 600

        hashes = [f"{k}h" for k in keys]
        for i, key in enumerate(hashes[::3]):
            await client.hset(key, mapping={"a": str(i), "c": "ç"})
        rows = await hmget_many(client, SKUS, hashes, ["a", "b", "c"], per_call=64)
        expected = []
        for key in hashes:
            a, b, c = await client.hmget(key, ["a", "b", "c"])
            expected.append([v.decode() if v is not None else None for v in (a, b, c)])
        assert rows == expected
        assert sum(r[0] is not None for r in rows) == len(hashes[::3])
        for key in keys + hashes:  # one by one: a cluster refuses a cross-slot DEL
            await client.delete(key)

    backend.run(body)


def test_slot_groups_one_slot_per_call_on_a_cluster() -> None:
    from redis.crc import key_slot

    groups = slot_groups(SKUS, cluster=True, per_call=4)
    assert sorted(i for g in groups for i in g) == list(range(len(SKUS)))
    for g in groups:
        assert len(g) <= 4
        assert len({key_slot(sku_tag(SKUS[i]).encode()) for i in g}) == 1
    assert slot_groups(SKUS, cluster=False, per_call=256) == [list(range(256)), list(range(256, len(SKUS)))]


def test_hiredis_packing_sends_the_same_bytes_and_works_on_a_server(backend: Backend) -> None:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import Connection

    from streams.redis_scripts import pack_with_hiredis

    plain = Connection()
    args = ("EVALSHA", "abc", 2, b"k{1}", "ünï", 1.5, 10**20, memoryview(b"xy"))
    packed = pack_with_hiredis(aioredis.Redis()).connection_pool.connection_class()
    assert b"".join(bytes(p) for p in packed.pack_command(*args)) == b"".join(
        bytes(p) for p in plain.pack_command(*args))
    assert packed.pack_command("CONFIG GET", "maxmemory") == plain.pack_command("CONFIG GET", "maxmemory")

    async def body(store: Any, client: Any) -> None:
        fast = backend.client()  # packs with hiredis, on every cluster node too
        try:
            key = f"{store.prefix}:packed"
            await fast.set(key, "välue", ex=60)
            assert await fast.get(key) == "välue".encode()
            pipe = fast.pipeline(transaction=False)
            tagged = f"{store.prefix}:{{packed}}"  # one slot, so a cluster pipeline takes it as is
            pipe.incrbyfloat(f"{tagged}:n", 1.5).hset(f"{tagged}:h", mapping={"a": 1}).hmget(f"{tagged}:h", ["a", "b"])
            assert await pipe.execute() == [1.5, 1, [b"1", None]]
            await fast.delete(key)
            await fast.delete(f"{tagged}:n", f"{tagged}:h")
            if backend.name == "cluster":  # the nodes found by discovery, not only the first one
                assert len(fast.get_nodes()) == 3
                assert all(n.connection_class.__name__.startswith("HiredisPacked") for n in fast.get_nodes())
        finally:
            await fast.aclose()

    backend.run(body)


_ECHO = LuaScript("""
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
""")


def _echo_calls(prefix: str, values: list[str]) -> list[tuple[list[str], list[str]]]:
    return [([f"{prefix}:{{echo}}:{i}"], [v]) for i, v in enumerate(values)]


def test_script_replies_come_back_in_order_and_an_error_reply_leaves_the_connection_usable(
    backend: Backend,
) -> None:
    async def body(store: Any, client: Any) -> None:
        values = [f"v{i}" for i in range(40)]
        assert await _ECHO.run(client, iter(_echo_calls(store.prefix, values))) == [v.encode() for v in values]
        with pytest.raises(ResponseError, match="asked to fail"):
            await _ECHO.run(client, _echo_calls(store.prefix, ["a", "fail", "b"]))
        # every reply of the failed run was read: the next run gets its own replies
        assert await _ECHO.run(client, _echo_calls(store.prefix, ["c", "d"])) == [b"c", b"d"]
        assert await client.get(f"{store.prefix}:{{echo}}:2") == b"b"  # the calls after the error ran
        await client.delete(*(key for (key,), _ in _echo_calls(store.prefix, values)))

    backend.run(body)


def test_a_standalone_server_runs_each_call_while_the_next_is_built(both_backends: list[Backend]) -> None:
    standalone = next(b for b in both_backends if b.name == "standalone")
    host, port = standalone.address.split(":")
    probe = redis.Redis(host=host, port=int(port))

    async def body(store: Any, client: Any) -> None:
        calls = _echo_calls(store.prefix, ["first", "second"])
        seen_before_second: list[Any] = []

        def lazily() -> Iterator[tuple[list[str], list[str]]]:
            yield calls[0]
            # the first call is on the wire already: the server runs it while this one is built
            deadline = time.monotonic() + 5
            while probe.get(calls[0][0][0]) is None and time.monotonic() < deadline:
                time.sleep(0.01)
            seen_before_second.append(probe.get(calls[0][0][0]))
            yield calls[1]

        assert await _ECHO.run(client, lazily()) == [b"first", b"second"]
        assert seen_before_second == [b"first"]
        await client.delete(calls[0][0][0], calls[1][0][0])

    standalone.run(body)


def test_a_run_survives_a_dropped_connection_and_a_flushed_script_cache(backend: Backend) -> None:
    async def body(store: Any, client: Any) -> None:
        values = ["x", "y", "z"]
        assert await _ECHO.run(client, _echo_calls(store.prefix, values)) == [b"x", b"y", b"z"]
        for host, port in _node_addresses(client):
            with redis.Redis(host=host, port=port) as node:
                node.client_kill_filter(_type="normal", skipme=True)  # drops the client's pooled ones
                node.script_flush()
        assert await _ECHO.run(client, _echo_calls(store.prefix, ["p", "q"])) == [b"p", b"q"]
        await client.delete(*(key for (key,), _ in _echo_calls(store.prefix, values)))

    backend.run(body)


_APPEND = LuaScript("return redis.call('APPEND', KEYS[1], ARGV[1])")
_GET = LuaScript("return redis.call('GET', KEYS[1])")


def test_run_in_order_runs_each_step_after_the_one_before(backend: Backend) -> None:
    async def body(store: Any, client: Any) -> None:
        keys = [f"{store.prefix}:{{{sku_tag(s)}}}:o" for s in SKUS[:40]]
        writes = [([k], ["ab"]) for k in keys]
        reads = [([k], []) for k in keys]
        lengths, values = await run_in_order(client, [(_APPEND, iter(writes), None),
                                                      (_GET, iter(reads), lambda i, v: (i, v))])
        assert lengths == [2] * len(keys)
        assert values == [(i, b"ab") for i in range(len(keys))]  # every read saw its write
        # The server forgets its scripts: the refused calls are loaded and sent again, once each,
        # and the reads run again after them.
        for host, port in _node_addresses(client):
            with redis.Redis(host=host, port=port) as node:
                node.script_flush()
        lengths, values = await run_in_order(client, [(_APPEND, iter(writes), None),
                                                      (_GET, iter(reads), lambda i, v: (i, v))])
        assert lengths == [4] * len(keys)
        assert values == [(i, b"abab") for i in range(len(keys))]
        with pytest.raises(ResponseError, match="asked to fail"):
            await run_in_order(client, [(_ECHO, _echo_calls(store.prefix, ["fail"]), None), (_GET, iter(reads), None)])
        assert await run_in_order(client, [(_GET, iter(reads[:2]), None)]) == [[b"abab", b"abab"]]
        await client.delete(*keys)
        await client.delete(*(key for (key,), _ in _echo_calls(store.prefix, ["fail"])))

    backend.run(body)


def _node_addresses(client: Any) -> list[tuple[str, int]]:
    if hasattr(client, "get_nodes"):
        return [(node.host, int(node.port)) for node in client.get_nodes()]
    kwargs = client.connection_pool.connection_kwargs
    return [(kwargs["host"], int(kwargs["port"]))]
