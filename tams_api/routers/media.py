"""PUT and GET of object bytes for the filesystem media store, on the signed URLs it hands out.

Not a TAMS path: this is the "simple file system storage with an HTTP frontend" the spec mentions.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from ..errors import NotFound
from ..metrics import MEDIA_BYTES_WRITTEN
from ..stores.filesystem import FilesystemMediaStore

router = APIRouter(tags=["Media"], include_in_schema=False)


def _store(request: Request, storage_id: str) -> FilesystemMediaStore:
    store = request.app.state.services.media.get(storage_id)
    if not isinstance(store, FilesystemMediaStore):
        raise NotFound("this service keeps no media on that storage backend: use the URLs it hands out")
    return store


@router.put("/media/{storage_id}/{object_id:path}")
async def put_media(
    request: Request, storage_id: str, object_id: str, expires: str = "", signature: str = ""
) -> Response:
    store = _store(request, storage_id)
    content_type = request.headers.get("content-type", "")
    store.verify("PUT", object_id, expires, signature, content_type)
    written = 0
    with store.writer(object_id, content_type) as handle:
        async for chunk in request.stream():
            await run_in_threadpool(handle.write, chunk)
            written += len(chunk)
    MEDIA_BYTES_WRITTEN.labels(store.backend.label).inc(written)
    return Response(status_code=200)


@router.api_route("/media/{storage_id}/{object_id:path}", methods=["GET", "HEAD"])
def get_media(request: Request, storage_id: str, object_id: str, expires: str = "", signature: str = "") -> Response:
    store = _store(request, storage_id)
    store.verify("GET", object_id, expires, signature)
    path = store.path(object_id)
    if not path.exists():
        raise NotFound(f"object {object_id} has no media uploaded")
    return FileResponse(path, media_type=store.content_type(object_id))
