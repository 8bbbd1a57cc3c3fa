"""Python `websockets` echo server for the hypersock client: prints its port, serves until
stdin closes. permessage-deflate is on (the library's default)."""
import asyncio
import sys

import websockets


async def echo(ws, _path=None):
    async for msg in ws:
        if msg == "close me":
            await ws.close(4001, "as asked")
            return
        await ws.send(msg)


async def main() -> None:
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
