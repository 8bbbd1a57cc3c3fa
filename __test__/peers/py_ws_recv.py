"""Python `websockets` client that receives messages from a hypersock server: connects (with
permessage-deflate unless the second argument is "plain"), reads messages until the server
closes, and prints one JSON line: each message's kind, length and SHA-256, and the close code."""
import asyncio
import hashlib
import json
import sys

import websockets


async def main(url: str, compression) -> None:
    got = []
    async with websockets.connect(url, compression=compression, max_size=None) as ws:
        try:
            async for msg in ws:
                data = msg.encode() if isinstance(msg, str) else msg
                got.append(
                    {
                        "text": isinstance(msg, str),
                        "length": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
        except websockets.ConnectionClosed:
            pass
        code = ws.close_code
    print(json.dumps({"messages": got, "close": code}))


mode = sys.argv[2] if len(sys.argv) > 2 else "deflate"
asyncio.run(main(sys.argv[1], None if mode == "plain" else "deflate"))
