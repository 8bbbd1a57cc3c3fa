"""Python `websockets` client against a hypersock server: echo text and binary, with and
without permessage-deflate, then close with a code. Prints one JSON line of what it saw."""
import asyncio
import json
import sys

import websockets


async def main(url: str) -> None:
    out = {}
    for compression in ("deflate", None):
        async with websockets.connect(url, compression=compression, max_size=None) as ws:
            big = "x" * 100_000
            await ws.send("hello")
            a = await ws.recv()
            await ws.send(b"\x00\x01\xff")
            b = await ws.recv()
            await ws.send(big)
            c = await ws.recv()
            out[str(compression)] = {
                "text": a,
                "binary": list(b),
                "big": c == big,
                "extensions": ws.response_headers.get("Sec-WebSocket-Extensions", ""),
            }
            await ws.close(4000, "py done")
            out[str(compression)]["close"] = ws.close_code
    print(json.dumps(out))


asyncio.run(main(sys.argv[1]))
