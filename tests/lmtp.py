"""A small LMTP client that reuses one connection for many messages (like an MTA)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence


class LmtpClient:
    """One LMTP connection reused for many messages (like an MTA's connection cache)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _reply(self) -> str:
        assert self.reader is not None
        while True:
            line = (await self.reader.readline()).decode()
            if len(line) < 4 or line[3] != "-":
                return line

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self._reply()
        self.writer.write(b"LHLO bench\r\n")
        await self._reply()

    async def send(self, sender: str, rcpts: Sequence[str], data: bytes) -> float:
        """Send one message; returns the time its last 2xx reply arrived."""
        assert self.writer is not None
        self.writer.write(f"MAIL FROM:<{sender}>\r\n".encode())
        assert (await self._reply()).startswith("250")
        for r in rcpts:
            self.writer.write(f"RCPT TO:<{r}>\r\n".encode())
            assert (await self._reply()).startswith("250")
        self.writer.write(b"DATA\r\n")
        assert (await self._reply()).startswith("354")
        self.writer.write(data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        for _ in rcpts:
            reply = await self._reply()
            assert reply.startswith("250"), reply
        return time.perf_counter()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.write(b"QUIT\r\n")
            self.writer.close()
