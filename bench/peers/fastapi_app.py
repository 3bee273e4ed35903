"""The FastAPI peer of the benchmark: what a team would write instead of Herald, doing the
same create, read, update and list as the direct baseline (the same routes, table, SQL and
pool size), with FastAPI, asyncpg and uvicorn as their guides show them. Like the baseline it
does no validation beyond JSON, no authorization, no events and no views.

Run by `herald-bench run --peers` with uvicorn: `uvicorn fastapi_app:app --workers 2`, the
database URL in HERALD_PEER_DATABASE_URL and each worker's pool size in HERALD_PEER_POOL_SIZE.
"""

import json
import os
import secrets
import time
import uuid
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

INSERT = """INSERT INTO direct.product (tenant, id, version, doc, f_price, f_status)
     VALUES ($1, $2, 1, $3::jsonb, ($3::jsonb->>'price')::float8, $3::jsonb->>'status')
     RETURNING id, version, doc, created_at, updated_at"""

SELECT = """SELECT id, version, doc, created_at, updated_at FROM direct.product
     WHERE tenant = $1 AND id = $2"""

UPDATE = """UPDATE direct.product
     SET doc = doc || $3::jsonb, version = version + 1, updated_at = now(),
         f_price = ((doc || $3::jsonb)->>'price')::float8, f_status = (doc || $3::jsonb)->>'status'
     WHERE tenant = $1 AND id = $2
     RETURNING id, version, doc, created_at, updated_at"""

LIST = """SELECT id, version, doc, created_at, updated_at FROM direct.product
     WHERE tenant = $1 AND f_status = $2 AND f_price < $3
     ORDER BY f_price DESC, id DESC LIMIT $4"""


async def init(connection):
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@asynccontextmanager
async def lifespan(app):
    size = int(os.environ.get("HERALD_PEER_POOL_SIZE", "8"))
    app.state.pool = await asyncpg.create_pool(
        os.environ["HERALD_PEER_DATABASE_URL"], min_size=size, max_size=size, init=init
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


def document(row):
    doc = dict(row["doc"])
    doc["id"] = str(row["id"])
    doc["version"] = row["version"]
    doc["created_at"] = row["created_at"].isoformat()
    doc["updated_at"] = row["updated_at"].isoformat()
    return doc


def uuid7():
    """A time-ordered id, as the baseline makes (uuid.uuid7 is Python 3.14's): 48 bits of
    milliseconds, the version, 12 random bits, the variant, 62 random bits."""
    millis = time.time_ns() // 1_000_000
    rand_a = secrets.randbits(12)
    rand_b = secrets.randbits(62)
    return uuid.UUID(int=(millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)


@app.get("/healthz")
async def health():
    return {"status": "ok"}


@app.post("/direct/{tenant}/product", status_code=201)
async def create(tenant: str, request: Request):
    body = await request.json()
    row = await app.state.pool.fetchrow(INSERT, tenant, uuid7(), body)
    return JSONResponse(document(row), status_code=201)


@app.get("/direct/{tenant}/product/{id}")
async def read(tenant: str, id: uuid.UUID):
    row = await app.state.pool.fetchrow(SELECT, tenant, id)
    if row is None:
        raise HTTPException(status_code=404)
    return document(row)


@app.patch("/direct/{tenant}/product/{id}")
async def update(tenant: str, id: uuid.UUID, request: Request):
    patch = await request.json()
    row = await app.state.pool.fetchrow(UPDATE, tenant, id, patch)
    if row is None:
        raise HTTPException(status_code=404)
    return document(row)


@app.get("/direct/{tenant}/product")
async def list_products(tenant: str, status: str, price_lt: float, limit: int = 50):
    rows = await app.state.pool.fetch(LIST, tenant, status, price_lt, limit)
    return {"data": [document(row) for row in rows]}
