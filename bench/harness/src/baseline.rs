//! The direct baseline: the least an HTTP + Postgres service can do for each workload, so
//! Herald's cost is read as a ratio to it. axum and tokio-postgres straight into one table,
//! with prepared statements and a pool as large as Herald's, and nothing else: no
//! validation, no authorization, no bus, no events, no views.
//!
//! Routes (documents are scoped by a tenant in the path, as Herald scopes them by the token):
//! `POST /direct/{tenant}/product` inserts and returns the document; `GET …/{id}` selects it;
//! `PATCH …/{id}` merges the body into it (top-level keys, as JSON Merge Patch does for flat
//! documents); `GET /direct/{tenant}/product?status=…&price_lt=…&limit=…` is the list query
//! of W4 over the same typed columns and index that Herald's view has.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_postgres::NoTls;
use uuid::Uuid;

/// The baseline's table, with the typed columns W4 filters and sorts on.
pub const SCHEMA_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS direct;
CREATE TABLE IF NOT EXISTS direct.product (
    tenant     text NOT NULL,
    id         uuid NOT NULL,
    version    bigint NOT NULL,
    doc        jsonb NOT NULL,
    f_price    double precision,
    f_status   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS product_price ON direct.product (tenant, f_price, id);
";

const INSERT: &str = "INSERT INTO direct.product (tenant, id, version, doc, f_price, f_status)
     VALUES ($1, $2, 1, $3::jsonb, ($3::jsonb->>'price')::float8, $3::jsonb->>'status')
     RETURNING id, version, doc, created_at, updated_at";

const SELECT: &str = "SELECT id, version, doc, created_at, updated_at FROM direct.product
     WHERE tenant = $1 AND id = $2";

const UPDATE: &str = "UPDATE direct.product
     SET doc = doc || $3::jsonb, version = version + 1, updated_at = now(),
         f_price = ((doc || $3::jsonb)->>'price')::float8, f_status = (doc || $3::jsonb)->>'status'
     WHERE tenant = $1 AND id = $2
     RETURNING id, version, doc, created_at, updated_at";

const LIST: &str = "SELECT id, version, doc, created_at, updated_at FROM direct.product
     WHERE tenant = $1 AND f_status = $2 AND f_price < $3
     ORDER BY f_price DESC, id DESC LIMIT $4";

/// A bound baseline server; [`Baseline::run_until_stopped`] serves it.
pub struct Baseline {
    listener: TcpListener,
    router: Router,
}

impl Baseline {
    /// Connects the pool, creates the table and binds `addr`.
    pub async fn build(
        database_url: &str,
        pool_size: usize,
        addr: SocketAddr,
    ) -> anyhow::Result<Self> {
        let config: tokio_postgres::Config = database_url
            .parse()
            .context("the baseline's database URL is invalid")?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .build()
            .context("cannot build the baseline's pool")?;
        pool.get()
            .await
            .context("the baseline cannot reach Postgres")?
            .batch_execute(SCHEMA_SQL)
            .await
            .context("cannot create the baseline's table")?;
        let router = Router::new()
            .route("/direct/{tenant}/product", post(create).get(list))
            .route("/direct/{tenant}/product/{id}", get(read).patch(update))
            .with_state(pool);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind {addr}"))?;
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("the baseline server failed")
    }
}

/// Every failure is a 500 with the error's text: the baseline only ever sees the harness.
struct Failed(String);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

impl<E: std::error::Error> From<E> for Failed {
    fn from(error: E) -> Self {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        Self(text)
    }
}

fn document(row: &tokio_postgres::Row) -> Result<Value, tokio_postgres::Error> {
    let mut doc = match row.try_get::<_, Value>(2)? {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    doc.insert("id".into(), json!(row.try_get::<_, Uuid>(0)?));
    doc.insert("version".into(), json!(row.try_get::<_, i64>(1)?));
    doc.insert(
        "created_at".into(),
        json!(row.try_get::<_, chrono::DateTime<chrono::Utc>>(3)?),
    );
    doc.insert(
        "updated_at".into(),
        json!(row.try_get::<_, chrono::DateTime<chrono::Utc>>(4)?),
    );
    Ok(Value::Object(doc))
}

async fn create(
    State(pool): State<Pool>,
    Path(tenant): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, Failed> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(INSERT).await?;
    let row = client
        .query_one(&statement, &[&tenant, &Uuid::now_v7(), &body])
        .await?;
    Ok((StatusCode::CREATED, Json(document(&row)?)).into_response())
}

async fn read(
    State(pool): State<Pool>,
    Path((tenant, id)): Path<(String, Uuid)>,
) -> Result<Response, Failed> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(SELECT).await?;
    Ok(match client.query_opt(&statement, &[&tenant, &id]).await? {
        Some(row) => Json(document(&row)?).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

async fn update(
    State(pool): State<Pool>,
    Path((tenant, id)): Path<(String, Uuid)>,
    Json(patch): Json<Value>,
) -> Result<Response, Failed> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(UPDATE).await?;
    Ok(
        match client
            .query_opt(&statement, &[&tenant, &id, &patch])
            .await?
        {
            Some(row) => Json(document(&row)?).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
    )
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: String,
    price_lt: f64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    50
}

async fn list(
    State(pool): State<Pool>,
    Path(tenant): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Failed> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(LIST).await?;
    let rows = client
        .query(
            &statement,
            &[&tenant, &query.status, &query.price_lt, &query.limit],
        )
        .await?;
    let data: Vec<Value> = rows.iter().map(document).collect::<Result<_, _>>()?;
    Ok(Json(json!({ "data": data })).into_response())
}
