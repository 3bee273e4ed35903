//! JetStream names and set-up. Every stream, consumer and subject carries the configured prefix
//! (`herald` by default), so environments and tests share one NATS server without meeting.
//!
//! Commands go to `<prefix>.cmd.<tenant>.<app>.<doc>`: the tenant and collection in the subject
//! let operators and later consumers filter without decoding payloads. Replies come back on
//! core NATS to `_HERALD.<prefix>.reply.<process>.<command id>`.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::ids::TenantId;
use crate::settings::NatsSettings;

/// The header naming the subject a handler replies to with the command's outcome.
pub const REPLY_TO_HEADER: &str = "Herald-Reply-To";

/// How long JetStream remembers a `Nats-Msg-Id` to drop duplicate publishes.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot set up JetStream stream {name}")]
    Stream {
        name: String,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    #[error("cannot set up JetStream consumer {name}")]
    Consumer {
        name: String,
        #[source]
        source: async_nats::Error,
    },
}

/// The servers of `nats.url`: one URL, or several separated by commas.
fn servers(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The URL as it may be logged: any `user:password@` or token before the host removed.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_owned(),
        },
        None => url
            .rsplit_once('@')
            .map_or_else(|| url.to_owned(), |(_, host)| host.to_owned()),
    }
}

/// A connection to NATS with the prefix every name is built from.
#[derive(Clone, Debug)]
pub struct Bus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    prefix: String,
    replicas: usize,
}

impl Bus {
    pub async fn connect(settings: &NatsSettings) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name("herald")
            .connection_timeout(Duration::from_secs(5))
            // Fail publishes fast while disconnected instead of buffering without bound.
            .client_capacity(4096)
            .connect(servers(&settings.url))
            .await
            .map_err(|source| BusError::Connect {
                url: servers(&settings.url)
                    .into_iter()
                    .map(without_credentials)
                    .collect::<Vec<_>>()
                    .join(","),
                source,
            })?;
        let jetstream = jetstream::new(client.clone());
        Ok(Self {
            client,
            jetstream,
            prefix: settings.prefix.clone(),
            replicas: settings.replicas,
        })
    }

    /// Replicas of each stream Herald creates.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `HERALD_COMMANDS` for the default prefix.
    pub fn commands_stream(&self) -> String {
        format!("{}_COMMANDS", self.prefix.to_uppercase())
    }

    pub fn command_subject(&self, tenant: &TenantId, app: &str, doc: &str) -> String {
        format!("{}.cmd.{}.{app}.{doc}", self.prefix, tenant.as_str())
    }

    /// Publishes a command and waits until JetStream has stored it. `Nats-Msg-Id` is the command
    /// id, so a command published twice is stored once; trace context travels in the headers
    /// too, for consumers that never decode the payload.
    pub async fn publish_command(
        &self,
        command: &crate::command::CommandEnvelope,
        reply_to: Option<&str>,
    ) -> Result<(), async_nats::Error> {
        let subject = self.command_subject(&command.principal.tenant, &command.app, &command.doc);
        let payload = serde_json::to_vec(command)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", command.id.to_string().as_str());
        if let Some(traceparent) = &command.traceparent {
            headers.insert("traceparent", traceparent.as_str());
        }
        if let Some(reply_to) = reply_to {
            headers.insert(REPLY_TO_HEADER, reply_to);
        }
        self.jetstream
            .publish_with_headers(subject, headers, payload.into())
            .await?
            .await?;
        Ok(())
    }

    /// `HERALD_EVENTS` for the default prefix: every committed event, in log order.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_uppercase())
    }

    /// `<prefix>.evt.<tenant>.<app>.<doc>.<verb>` for an event of type `<app>.<doc>.<verb>`.
    pub fn event_subject(&self, tenant: &str, event_type: &str) -> String {
        format!("{}.evt.{tenant}.{event_type}", self.prefix)
    }

    /// Creates (or finds) the events stream: limits retention, so any number of consumers
    /// read it, and events older than `max_age` are dropped.
    pub async fn ensure_events_stream(
        &self,
        max_age: Duration,
    ) -> Result<stream::Stream, BusError> {
        let name = self.events_stream();
        self.jetstream
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{}.evt.>", self.prefix)],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                max_age,
                duplicate_window: DUPLICATE_WINDOW,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(|source| BusError::Stream { name, source })
    }

    /// The subject prefix an api process receives its replies under.
    pub fn reply_prefix(&self, process: &str) -> String {
        format!("_HERALD.{}.reply.{process}", self.prefix)
    }

    /// Creates the commands stream, or finds it (its settings are those of its creation).
    pub async fn ensure_commands_stream(&self) -> Result<stream::Stream, BusError> {
        self.ensure_work_queue(self.commands_stream(), "cmd").await
    }

    /// Creates (or finds) the stream `name` over `<prefix>.<kind>.>` as a work queue: each
    /// message is handled once and removed when acknowledged; `Nats-Msg-Id` dedupes publishes.
    pub async fn ensure_work_queue(
        &self,
        name: String,
        kind: &str,
    ) -> Result<stream::Stream, BusError> {
        self.jetstream
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{}.{kind}.>", self.prefix)],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(|source| BusError::Stream { name, source })
    }

    /// The durable pull consumer all handler processes share.
    pub async fn commands_consumer(
        &self,
        ack_wait: Duration,
        max_ack_pending: i64,
    ) -> Result<consumer::PullConsumer, BusError> {
        let stream = self.ensure_commands_stream().await?;
        let name = format!("{}_handlers", self.prefix);
        stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait,
                    max_ack_pending,
                    // A command is never given up on: redelivered until a handler records it.
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|source| BusError::Consumer {
                name,
                source: source.into(),
            })
    }
}

/// How long one pull request waits for messages; bounds how long shutdown waits for a batch.
const PULL_EXPIRY: Duration = Duration::from_millis(500);

/// Pulls messages in batches sized to the free capacity and hands each to `handle`, at most
/// `concurrency` at a time, until `shutdown`. Every message delivered to this process is
/// either handled (which acks or naks it) or, when it arrives after shutdown began, naked at
/// once — none waits out the ack deadline in a buffer.
pub async fn consume<F, Fut>(
    consumer: &consumer::PullConsumer,
    concurrency: usize,
    shutdown: &tokio_util::sync::CancellationToken,
    handle: F,
) where
    F: Fn(jetstream::Message) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use futures::StreamExt;

    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let tracker = tokio_util::task::TaskTracker::new();
    while !shutdown.is_cancelled() {
        let free = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => { drop(permit); permits.available_permits().max(1) }
                Err(_) => break,
            },
        };
        let batch = consumer
            .batch()
            .max_messages(free)
            .expires(PULL_EXPIRY)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "pull request failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(PULL_EXPIRY) => continue,
                }
            }
        };
        // The server ends a pull at its expiry; if that end never arrives, stop waiting for it
        // and pull afresh rather than stall.
        while let Ok(Some(next)) = tokio::time::timeout(PULL_EXPIRY * 3, batch.next()).await {
            let message = match next {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "pulling messages failed");
                    break;
                }
            };
            if shutdown.is_cancelled() {
                drop(message.ack_with(jetstream::AckKind::Nak(None)).await);
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let work = handle(message);
            tracker.spawn(async move {
                work.await;
                drop(permit);
            });
        }
    }
    tracker.close();
    tracker.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_servers_is_split_and_shown_without_credentials() {
        let url = "nats://a:4222, nats://user:secret@b:4223,";
        assert_eq!(servers(url), ["nats://a:4222", "nats://user:secret@b:4223"]);
        let shown: Vec<String> = servers(url).into_iter().map(without_credentials).collect();
        assert_eq!(shown, ["nats://a:4222", "nats://b:4223"]);
        assert_eq!(without_credentials("token@c:4222"), "c:4222");
    }
}
