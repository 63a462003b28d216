"""The floor a TAMS endpoint is measured against: a bare Starlette app answering a 10-element JSON list, run by
uvicorn exactly as `tams-api serve` runs the API (same call, same settings: uvloop, httptools with each answer in one
write, no access log).

    python -m bench.bare_asgi serve --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tams_api.coalescing import CoalescingHttpToolsProtocol

LIST = [f"segment {n}" for n in range(10)]


async def listing(_: Request) -> JSONResponse:
    return JSONResponse(LIST)


async def health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/", listing), Route("/health", health)])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_asgi")
    serve = parser.add_subparsers(dest="command", required=True).add_parser("serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        http=CoalescingHttpToolsProtocol,
    )


if __name__ == "__main__":
    main()
