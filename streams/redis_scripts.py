"""Lua scripts run inside pipelines, and the grouping of per-SKU keys into script calls.

A script call may only touch keys of one hash slot on a cluster, so SKUs are grouped by the slot
of their hash tag there; on a standalone server a call takes many SKUs at once. Either way every
call of a batch goes in one non-transactional pipeline: one round trip per node, and one command
for many keys instead of one per key (redis-py's per-command cost is most of the client's work).
On a standalone server the pipeline is streamed: each call leaves as soon as it is built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import hiredis
import orjson
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import KeyT

RedisT = TypeVar("RedisT", Redis, RedisCluster)


class _HiredisPacking(AbstractConnection):
    """Packs commands with hiredis' C packer (mixed into the pool's connection class).

    redis-py's asyncio connection packs in Python, re-joining a growing buffer per argument; for
    the worker's script calls (hundreds of keys each) that was several milliseconds a batch.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # 'CONFIG GET' and the like: one argument per word
            args = tuple(args[0].encode().split()) + args[1:]
        elif b" " in args[0]:
            args = tuple(args[0].split()) + args[1:]
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # an argument hiredis does not take (None, bool): redis-py says why
            return super().pack_command(*args)


ConnT = TypeVar("ConnT", bound=AbstractConnection)


def _packed(base: type[ConnT]) -> type[ConnT]:
    """``base`` with hiredis packing mixed in (itself if it has it already)."""
    if issubclass(base, _HiredisPacking):
        return base
    return type(f"HiredisPacked{base.__name__}", (_HiredisPacking, base), {})


def pack_with_hiredis(client: RedisT) -> RedisT:
    """Make ``client``'s connections (plain or TLS; standalone or every cluster node, including
    nodes discovered later) pack commands with hiredis; returns it. Call before first use."""
    if isinstance(client, RedisCluster):
        kwargs = client.nodes_manager.connection_kwargs
        kwargs["connection_class"] = _packed(kwargs.get("connection_class", Connection))
        for node in client.nodes_manager.startup_nodes.values():
            node.connection_class = _packed(node.connection_class)
        return client
    pool = client.connection_pool
    pool.connection_class = _packed(pool.connection_class)
    return client


def sku_tag(sku: str) -> str:
    """The SKU as it appears inside the key's hash tag (braces and ``%`` percent-encoded)."""
    if "{" in sku or "}" in sku or "%" in sku:
        return sku.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return sku


def slot_groups(skus: Sequence[str], cluster: bool, per_call: int) -> list[list[int]]:
    """Indices of ``skus`` grouped into script calls: one hash slot per call on a cluster."""
    if cluster:
        by_slot: dict[int, list[int]] = {}
        for i, sku in enumerate(skus):
            by_slot.setdefault(key_slot(sku_tag(sku).encode()), []).append(i)
        buckets = list(by_slot.values())
    else:
        buckets = [list(range(len(skus)))]
    return [b[j : j + per_call] for b in buckets for j in range(0, len(b), per_call)]


Call = tuple[Sequence[KeyT], Sequence[Any]]
"""One script call: its keys and its arguments."""


Parse = Callable[[int, Any], Any]
"""Turns one call's reply into its result: ``parse(call index, reply)``."""


def _parsed(parse: Parse | None, i: int, reply: Any) -> Any:
    return reply if parse is None or isinstance(reply, Exception) else parse(i, reply)


class LuaScript:
    """A Lua script run by EVALSHA inside pipelines; reloaded on every node after NOSCRIPT."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def run(
        self, client: Redis | RedisCluster, calls: Iterable[Call], parse: Parse | None = None
    ) -> list[Any]:
        """Run every call in one pipeline (one round trip per node); their replies in order, each
        passed through ``parse(call index, reply)`` if given.

        On a standalone server each call is sent as soon as ``calls`` yields it and each reply is
        parsed as it arrives, so the server works while the client builds the next calls and
        parses earlier replies (pass a generator to get that). After a dropped connection calls
        may be sent, and their replies parsed, again: scripts run this way must be safe to repeat
        and ``parse`` must be a pure function.
        """

        built: list[Call] = []
        if isinstance(client, RedisCluster):
            built = list(calls)
            replies = await self._send(client, built, range(len(built)))
            # redis-py's cluster pipeline does not retry a dropped connection (the reply is the
            # error); the scripts run here are all safe to repeat, so resend those calls once.
            dropped = [i for i, reply in enumerate(replies) if isinstance(reply, RedisConnectionError)]
            if dropped:
                for i, reply in zip(dropped, await self._send(client, built, dropped), strict=True):
                    replies[i] = reply
            replies = [_parsed(parse, i, reply) for i, reply in enumerate(replies)]
        else:
            replies = await _stream(client, ((self, call) for call in _recorded(calls, built)),
                                    lambda j, reply: _parsed(parse, j, reply))
        return (await self._settle(client, built, replies, parse))[0]

    async def _settle(self, client: Redis | RedisCluster, built: Sequence[Call], replies: Sequence[Any],
                      parse: Parse | None) -> tuple[list[Any], bool]:
        """The calls' results: those refused with NOSCRIPT (the server lost its scripts) loaded and
        sent again, any other error reply raised. Also says whether any call was sent again."""
        results: list[Any] = [None] * len(built)
        pending: Sequence[int] = range(len(built))
        resent = False
        for attempt in range(2):
            missing = []
            for i, reply in zip(pending, replies, strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    missing.append(i)  # NOSCRIPT: the script did not run, safe to resend
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    results[i] = reply
            if not missing:
                break
            # On a cluster SCRIPT LOAD goes to every primary (a failover or restart loses scripts).
            await client.script_load(self.source)
            pending, resent = missing, True
            again = await self._send(client, built, missing)
            replies = [_parsed(parse, i, reply) for i, reply in zip(missing, again, strict=True)]
        return results, resent

    def _command(self, call: Call) -> tuple[Any, ...]:
        keys, args = call
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def _send(self, client: Redis | RedisCluster, calls: Sequence[Call], which: Iterable[int]) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for i in which:
            # Raw command: redis-py blocks ``evalsha`` in cluster pipelines because it cannot
            # reload scripts there; run() does that itself.
            pipe.execute_command(*self._command(calls[i]))
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


Step = tuple[LuaScript, Iterable[Call], Parse | None]
"""One script's calls in :func:`run_in_order`, and how to parse their replies."""


async def run_in_order(client: Redis | RedisCluster, steps: Sequence[Step]) -> list[list[Any]]:
    """Each step's calls (as :meth:`LuaScript.run`), a step's only after the previous step's: per
    step, its results.

    On a standalone server every step goes in one round trip on one connection: the server runs
    commands of a connection in order, so a step sees what the one before it wrote, and it runs
    a step while the client builds the next (a batch's window update, then its read). A call
    refused with NOSCRIPT is loaded and sent again, and every later step is run again whole (it
    may have missed that call's effect): later steps must be safe to repeat (reads). On a
    cluster the steps run one after another.
    """
    if isinstance(client, RedisCluster):
        return [await script.run(client, calls, parse) for script, calls, parse in steps]
    built: list[list[Call]] = [[] for _ in steps]
    owner: list[tuple[int, int]] = []  # per command sent: (step, call index within it)

    def commands() -> Iterator[tuple[LuaScript, Call]]:
        for s, (script, calls, _) in enumerate(steps):
            for call in calls:
                owner.append((s, len(built[s])))
                built[s].append(call)
                yield script, call

    def parsed(j: int, reply: Any) -> Any:
        s, i = owner[j]
        return _parsed(steps[s][2], i, reply)

    replies = await _stream(client, commands(), parsed)
    per_step: list[list[Any]] = [[] for _ in steps]
    for (s, _), reply in zip(owner, replies, strict=True):
        per_step[s].append(reply)
    results: list[list[Any]] = []
    rerun = False
    for s, (script, _, parse) in enumerate(steps):
        if rerun:
            results.append(await script.run(client, built[s], parse))
            continue
        step_results, resent = await script._settle(client, built[s], per_step[s], parse)
        results.append(step_results)
        rerun = resent
    return results


async def _stream(client: Redis, commands: Iterator[tuple[LuaScript, Call]], parsed: Parse) -> list[Any]:
    """A pipeline on one connection that writes each command as soon as it is built, then reads
    and parses every reply (error replies as exception objects, like a pipeline's)."""
    pool = client.connection_pool
    conn = await pool.get_connection()
    sent: list[Any] = []

    async def attempt() -> list[Any]:
        for command in sent:  # a retry after a lost connection resends what was built
            await conn.send_packed_command(command, check_health=False)
        for script, call in commands:
            command = conn.pack_command(*script._command(call))
            sent.append(command)
            await conn.send_packed_command(command, check_health=False)
        replies: list[Any] = []
        for i in range(len(sent)):
            try:
                replies.append(parsed(i, await conn.read_response()))
            except ResponseError as error:
                replies.append(error)
        return replies

    async def on_failure(_error: Exception) -> None:
        await conn.disconnect()

    try:
        replies: list[Any] = await conn.retry.call_with_retry(attempt, on_failure)
        return replies
    except BaseException:
        # an interrupted exchange leaves unread replies: never hand the socket back as is
        await conn.disconnect(nowait=True)
        raise
    finally:
        await pool.release(conn)


def _recorded(calls: Iterable[Call], into: list[Call]) -> Iterator[Call]:
    """``calls``, each also appended to ``into`` as it is taken (for a resend after NOSCRIPT)."""
    for call in calls:
        into.append(call)
        yield call


_HMGET_MANY = LuaScript("""
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HMGET', key, unpack(ARGV)) end
return cjson.encode(out)
""")
_SET_MANY = LuaScript("""
for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1]) end
return #KEYS
""")


async def hmget_many(client: Redis | RedisCluster, skus: Sequence[str], keys: Sequence[KeyT],
                     fields: Sequence[str], per_call: int = 256) -> list[list[str | None]]:
    """``HMGET key fields`` of every SKU's key (as text; ``None`` where missing), few commands."""
    out: list[list[str | None]] = [[None] * len(fields) for _ in keys]
    groups = slot_groups(skus, isinstance(client, RedisCluster), per_call)
    replies = await _HMGET_MANY.run(client, [([keys[i] for i in g], list(fields)) for g in groups])
    for group, reply in zip(groups, replies, strict=True):
        for i, values in zip(group, orjson.loads(reply), strict=True):
            out[i] = [v if v is not False else None for v in values]
    return out


async def set_many(client: Redis | RedisCluster, skus: Sequence[str], keys: Sequence[KeyT],
                   values: Sequence[bytes], ttl_s: int, per_call: int = 256) -> None:
    """``SET key value EX ttl_s`` for every SKU's key, few commands."""
    groups = slot_groups(skus, isinstance(client, RedisCluster), per_call)
    await _SET_MANY.run(client, [([keys[i] for i in g], [str(ttl_s), *(values[i] for i in g)]) for g in groups])
