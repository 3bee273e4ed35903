//! `GET /v1/events`, `/v1/{app}/{doc}/events`, `/v1/{app}/{doc}/{id}/events`: Server-Sent Events
//! with `Accept: text/event-stream`, otherwise a JSON page of events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use herald_bus::ids::EventType;
use herald_bus::position::LogPosition;
use herald_bus::store::reader::read_batch;
use serde_json::json;
use tokio::sync::mpsc;

use crate::auth::{Caller, TokenExpiry};
use crate::error::ApiError;
use crate::extract::{Path, Query, page_limit, reject_unknown_parameters};
use crate::sse;
use crate::state::AppState;
use crate::tail::{Ending, ReadyEvent, Selection, follow};

/// Events waiting to be written to one subscriber's connection.
const SEND_BUFFER: usize = 16;
const LAST_EVENT_ID: &str = "last-event-id";
/// How long the last event (`reauth`, `lagged`) may wait for a slow client.
const FINAL_EVENT_WAIT: Duration = Duration::from_secs(5);

/// The most bytes of waiting events sent in one write.
const MAX_WRITE: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(all))
        .route("/v1/{app}/{doc}/events", get(collection))
        .route("/v1/{app}/{doc}/{id}/events", get(document))
}

type Params = HashMap<String, String>;

async fn all(
    State(state): State<AppState>,
    caller: Caller,
    expiry: Option<axum::Extension<TokenExpiry>>,
    Query(query): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let selection = Selection {
        types: types(&state, &query, None)?,
        principal: caller.0,
        collection: None,
        stream_id: None,
    };
    respond(state, selection, &query, &headers, expiry).await
}

async fn collection(
    State(state): State<AppState>,
    caller: Caller,
    expiry: Option<axum::Extension<TokenExpiry>>,
    Path((app, doc)): Path<(String, String)>,
    Query(query): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = state
        .readable_collection(&caller, &app, &doc)?
        .0
        .collection()
        .to_string();
    let selection = Selection {
        types: types(&state, &query, Some(&name))?,
        principal: caller.0,
        collection: Some(name),
        stream_id: None,
    };
    respond(state, selection, &query, &headers, expiry).await
}

async fn document(
    State(state): State<AppState>,
    caller: Caller,
    expiry: Option<axum::Extension<TokenExpiry>>,
    Path((app, doc, id)): Path<(String, String, String)>,
    Query(query): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let collection = state
        .readable_collection(&caller, &app, &doc)?
        .0
        .collection();
    let name = collection.to_string();
    let id = caller.document_id(&id)?;
    let selection = Selection {
        types: types(&state, &query, Some(&name))?,
        principal: caller.0,
        stream_id: Some(collection.stream(id).to_string()),
        collection: Some(name),
    };
    respond(state, selection, &query, &headers, expiry).await
}

/// `types=a,b`: full type names of known documents (of `collection`, on its own paths).
fn types(
    state: &AppState,
    query: &Params,
    collection: Option<&str>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = query.get("types") else {
        return Ok(None);
    };
    let mut types = Vec::new();
    for name in raw.split(',') {
        let known = EventType::parse(name).is_some_and(|event_type| {
            let owner = event_type.collection.to_string();
            state
                .registry
                .named(&owner)
                .is_some_and(|schema| schema.event_types().contains(&event_type))
                && collection.is_none_or(|c| c == owner)
        });
        if !known {
            return Err(ApiError::invalid_query(
                "types",
                format!("`{name}` is not an event type of this stream"),
            ));
        }
        types.push(name.to_owned());
    }
    Ok(Some(types))
}

/// The position to resume after: `Last-Event-ID` (a reconnecting browser) or `?after=`.
async fn resume_position(
    state: &AppState,
    query: &Params,
    headers: &HeaderMap,
) -> Result<Option<LogPosition>, ApiError> {
    let (parameter, raw) = match headers.get(LAST_EVENT_ID) {
        Some(value) => (
            "Last-Event-ID",
            value.to_str().unwrap_or("\u{0}").to_owned(),
        ),
        None => match query.get("after") {
            Some(raw) => ("after", raw.clone()),
            None => return Ok(None),
        },
    };
    let position = LogPosition::parse(raw.trim()).ok_or_else(|| {
        ApiError::invalid_query(parameter, "not a position token from this server")
    })?;
    crate::views::check_issued(state.store.pool(), parameter, position).await?;
    Ok(Some(position))
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

async fn respond(
    state: AppState,
    selection: Selection,
    query: &Params,
    headers: &HeaderMap,
    expiry: Option<axum::Extension<TokenExpiry>>,
) -> Result<Response, ApiError> {
    let streaming = wants_stream(headers);
    let known: &[&str] = if streaming {
        &["after", "types"]
    } else {
        &["after", "types", "limit"]
    };
    reject_unknown_parameters(query, known)?;
    let after = resume_position(&state, query, headers).await?;
    if streaming {
        subscribe(state, selection, after, expiry.map(|e| e.0)).await
    } else {
        page(&state, &selection, after, query).await
    }
}

async fn page(
    state: &AppState,
    selection: &Selection,
    after: Option<LogPosition>,
    query: &Params,
) -> Result<Response, ApiError> {
    let limit = page_limit(query.get("limit"))?;
    let mut client = state.db().await?;
    let batch = read_batch(
        &mut client,
        after.unwrap_or(LogPosition::START),
        &selection.filter(),
        limit,
    )
    .await
    .map_err(ApiError::store_unavailable)?;
    let data: Vec<_> = batch
        .events
        .iter()
        .filter_map(|event| selection.view(&state.registry, event))
        .collect();
    // A page that stopped at an event that cannot be read continues past it.
    let next_after = (!batch.caught_up).then(|| batch.past_unreadable("event page").token());
    Ok(Json(json!({"data": data, "next_after": next_after})).into_response())
}

async fn subscribe(
    state: AppState,
    selection: Selection,
    after: Option<LogPosition>,
    expiry: Option<TokenExpiry>,
) -> Result<Response, ApiError> {
    let permit = state
        .streams
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Unavailable("too many open event streams; retry later".into()))?;
    let (sender, receiver) = mpsc::channel::<Bytes>(SEND_BUFFER);
    // The stream ends when the server would start refusing the token: past `exp` and the leeway.
    let leeway = state.settings.auth.leeway_secs;
    let expires_in = expiry.and_then(|TokenExpiry(exp)| {
        let refused_from = exp.checked_add(leeway)?.checked_add(1)?;
        let refused_from = UNIX_EPOCH.checked_add(Duration::from_secs(refused_from))?;
        Some(
            refused_from
                .duration_since(SystemTime::now())
                .unwrap_or_default(),
        )
    });
    let task_state = state.clone();
    state.streams.tasks.spawn(async move {
        let _permit = permit;
        let state = task_state;
        let deliver = |delivery: ReadyEvent| {
            let sender = sender.clone();
            async move { sender.send(delivery.frame).await.is_ok() }
        };
        let feed = follow(
            state.store.pool(),
            &state.registry,
            &state.streams.tail,
            &selection,
            after,
            &state.streams.stop,
            deliver,
        );
        let expired = async {
            match expires_in {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        let closed = sender.clone();
        let stop = state.streams.stop.clone();
        let last_words = tokio::select! {
            // The client left: free its place now, not at the next event.
            () = closed.closed() => None,
            // Even a client that stopped reading must not hold the api's drain.
            () = stop.cancelled() => None,
            ending = feed => match ending {
                Some(Ending::Lagged) => {
                    state.streams.lagged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Some(sse::notice("lagged", "this subscriber fell too far behind; reconnect with Last-Event-ID to resume"))
                }
                Some(Ending::Shutdown) | None => None,
            },
            () = expired => Some(sse::notice("reauth", "the token has expired; reconnect with a fresh token and Last-Event-ID to resume")),
        };
        if let Some(event) = last_words {
            // Best effort: a client that stopped reading does not get it.
            drop(tokio::time::timeout(FINAL_EVENT_WAIT, sender.send(event)).await);
        }
    });
    let heartbeat = Duration::from_secs(state.settings.streams.heartbeat_secs);
    let mut response = Response::new(Body::from_stream(coalesced(receiver, heartbeat)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies must pass events on as they come.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The stream's body: every frame waiting when the connection can take more goes out in one
/// write, so a subscriber that keeps up gets one write per event and one that is a little
/// behind catches up in few writes rather than one per event. A comment line keeps an idle
/// connection alive every `heartbeat`.
fn coalesced(
    receiver: mpsc::Receiver<Bytes>,
    heartbeat: Duration,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::unfold(receiver, move |mut receiver| async move {
        let first = match tokio::time::timeout(heartbeat, receiver.recv()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(_) => return Some((Ok(Bytes::from_static(sse::HEARTBEAT)), receiver)),
        };
        let Ok(second) = receiver.try_recv() else {
            // Alone: the shared frame itself, not a copy.
            return Some((Ok(first), receiver));
        };
        let mut chunk = BytesMut::with_capacity(first.len() + second.len());
        chunk.extend_from_slice(&first);
        chunk.extend_from_slice(&second);
        while chunk.len() < MAX_WRITE {
            match receiver.try_recv() {
                Ok(frame) => chunk.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        Some((Ok(chunk.freeze()), receiver))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures::StreamExt as _;
    use tokio::sync::mpsc;

    use super::coalesced;

    #[tokio::test(start_paused = true)]
    async fn waiting_frames_go_out_in_one_write_and_an_idle_stream_hears_a_heartbeat() {
        let (sender, receiver) = mpsc::channel(16);
        for n in 0..3 {
            assert!(
                sender
                    .send(Bytes::from(format!("id: {n}\n\n")))
                    .await
                    .is_ok()
            );
        }
        let mut body = Box::pin(coalesced(receiver, Duration::from_secs(15)));
        let first = body.next().await.and_then(Result::ok).unwrap_or_default();
        assert_eq!(first, Bytes::from("id: 0\n\nid: 1\n\nid: 2\n\n"));
        let idle = body.next().await.and_then(Result::ok).unwrap_or_default();
        assert_eq!(idle, Bytes::from_static(b":heartbeat\n\n"));
        drop(sender);
        assert!(
            body.next().await.is_none(),
            "the stream ends with its sender"
        );
    }
}
