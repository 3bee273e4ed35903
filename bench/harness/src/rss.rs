//! A process's resident memory, read at intervals while a workload runs (W8 and the soak).

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::setup::rss_bytes;

/// How often W8 reads a process's memory while it is under load.
const RSS_INTERVAL: Duration = Duration::from_millis(250);

/// Runs `work` while reading `pid`'s memory, and returns the largest reading with its result.
pub(crate) async fn with_peak_rss<T>(
    pid: u32,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, u64)> {
    let (result, samples) = with_rss(pid, RSS_INTERVAL, work).await?;
    Ok((result?, samples.into_iter().max().unwrap_or(0)))
}

/// Runs `work` while reading `pid`'s memory every `interval`; returns its result and the
/// readings.
pub async fn with_rss<T>(
    pid: u32,
    interval: Duration,
    work: impl std::future::Future<Output = T>,
) -> anyhow::Result<(T, Vec<u64>)> {
    let stop = CancellationToken::new();
    let sampler = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut samples = Vec::new();
            let mut ticker = tokio::time::interval(interval);
            while !stop.is_cancelled() {
                tokio::select! {
                    () = stop.cancelled() => {}
                    _ = ticker.tick() => samples.push(rss_bytes(pid).unwrap_or(0)),
                }
            }
            samples
        }
    });
    let result = work.await;
    stop.cancel();
    let samples = sampler.await.context("the memory sampler failed")?;
    Ok((result, samples))
}
