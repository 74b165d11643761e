"""Reading an upload's body within its limits: one buffer, gzip inflated as it arrives, a memory budget.

Three limits, each checked as early as it can be:

- the wire limit (`--max-body-mb`, 64 MiB): a `Content-Length` over it is refused from the headers,
  a chunked body as soon as it passes it; the limit itself is allowed;
- the inflated limit (`--max-inflated-mb`, 256 MiB: a 1M-result batch is ~131 MiB): a gzip body is
  inflated chunk by chunk as it arrives, never past this many bytes, so a small gzip bomb costs no
  more than a large plain body;
- the bytes in flight across all requests (`--max-in-flight-mb`, 512 MiB): a request holds its
  share of a `ByteBudget` from before it reads its body until its answer is sent; when the budget
  is spent, further uploads wait (their bodies stay in the kernel's socket buffers) and answer 503
  after `wait_seconds`, which the uploader retries.

Only the decoded body is ever held: received chunks are copied into one growing buffer (inflated
first when gzip), never kept in a list and joined.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

MIB = 1024 * 1024
DEFAULT_MAX_BODY = 64 * MIB
DEFAULT_MAX_INFLATED = 256 * MIB
DEFAULT_MAX_IN_FLIGHT = 512 * MIB
# A body that arrives without a Content-Length, or inflates, takes its share in steps of this size.
BUDGET_STEP = 4 * MIB
_INFLATE_STEP = 1024 * 1024


class BodyError(Exception):
    """The body cannot be accepted; `status` and `message` are the answer (plain text)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED
    max_in_flight_bytes: int = DEFAULT_MAX_IN_FLIGHT
    body_seconds: float = 300.0  # wall-clock deadline for receiving one body
    wait_seconds: float = 60.0  # longest wait for a share of the budget before answering 503

    def __post_init__(self) -> None:
        # One request at its largest must fit, or it could wait for ever.
        largest = max(self.max_body_bytes, self.max_inflated_bytes)
        if self.max_in_flight_bytes < largest:
            object.__setattr__(self, "max_in_flight_bytes", largest)


class ByteBudget:
    """A semaphore counted in bytes, first come first served."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.available = capacity
        self._changed = asyncio.Condition()

    async def acquire(self, amount: int, deadline: float) -> None:
        """Take `amount` bytes, waiting at most until `deadline` (time.monotonic()); else BodyError 503."""
        async with self._changed:
            while self.available < amount:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BodyError(503, "Busy: too many uploads in progress, retry later",
                                    {"Retry-After": "5"})  # fmt: skip
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    continue
            self.available -= amount

    async def release(self, amount: int) -> None:
        async with self._changed:
            self.available += amount
            self._changed.notify_all()


class Share:
    """One request's part of the budget: it grows as the body does and is given back at the end."""

    def __init__(self, budget: ByteBudget, deadline: float) -> None:
        self.budget = budget
        self.deadline = deadline
        self.held = 0

    async def cover(self, size: int, step: int = BUDGET_STEP) -> None:
        """Hold at least `size` bytes, taken in whole steps so the budget is not asked for every chunk."""
        if size > self.held:
            wanted = max(size - self.held, step)
            await self.budget.acquire(wanted, self.deadline)
            self.held += wanted

    async def give_back(self) -> None:
        held, self.held = self.held, 0
        if held:
            await self.budget.release(held)


@asynccontextmanager
async def share_of(budget: ByteBudget, limits: Limits) -> AsyncIterator[Share]:
    share = Share(budget, time.monotonic() + limits.wait_seconds)
    try:
        yield share
    finally:
        await share.give_back()


def declared_length(value: str | None, limits: Limits) -> int | None:
    """The `Content-Length` as a number (None when absent); 400 when malformed, 413 when over the limit."""
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise BodyError(400, "Bad request: invalid Content-Length")
    length = int(value)
    if length > limits.max_body_bytes:
        raise BodyError(413, f"Payload too large: the limit is {limits.max_body_bytes} bytes")
    return length


def check_encoding(value: str | None) -> bool:
    """True for gzip; identity (or none) is False; anything else is a 415."""
    encoding = (value or "").strip().lower()
    if encoding == "gzip":
        return True
    if encoding not in ("", "identity"):
        raise BodyError(415, "Unsupported Content-Encoding: send gzip or identity")
    return False


class BodyBuffer:
    """The decoded body, appended chunk by chunk; gzip is inflated as it arrives, within the cap."""

    def __init__(self, limits: Limits, share: Share, *, gzip: bool) -> None:
        self.limits = limits
        self.share = share
        self.data = bytearray()
        self.received = 0
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None

    async def add(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.received += len(chunk)
        if self.received > self.limits.max_body_bytes:
            raise BodyError(413, f"Payload too large: the limit is {self.limits.max_body_bytes} bytes")
        if self._inflater is None:
            await self.share.cover(len(self.data) + len(chunk))
            self.data += chunk
            return
        if self._inflater.eof:
            raise BodyError(400, "Bad request: truncated gzip body or data after it")
        pending = chunk
        while pending:  # in steps, so one small chunk cannot inflate into gigabytes at once
            room = self.limits.max_inflated_bytes - len(self.data)
            try:
                out = self._inflater.decompress(pending, min(_INFLATE_STEP, room + 1))
            except zlib.error as error:
                raise BodyError(400, "Bad request: invalid gzip body") from error
            if len(out) > room:
                raise BodyError(
                    413, f"Payload too large: inflated, the limit is {self.limits.max_inflated_bytes} bytes"
                )
            await self.share.cover(len(self.data) + len(out))
            self.data += out
            pending = self._inflater.unconsumed_tail
            if self._inflater.eof:
                if pending or self._inflater.unused_data:
                    raise BodyError(400, "Bad request: truncated gzip body or data after it")
                return

    def finish(self) -> bytearray:
        if self._inflater is not None and not self._inflater.eof:
            raise BodyError(400, "Bad request: truncated gzip body or data after it")
        return self.data
