//! Parked events applied again at an operator's request (`POST /v1/admin/parked-events/replay`
//! marks them). The holder of a version's lease refolds each marked event's document from
//! nothing over its events up to the version's checkpoint, as a rebuild of the view would, and
//! writes the row; the parked row then goes, or stays with the new error.

use std::collections::HashMap;

use deadpool_postgres::{ClientWrapper, Transaction};
use herald_bus::document::DocumentState;
use herald_bus::position::LogPosition;
use herald_bus::store::parked::{self, EventFailure, ReplayRequest};
use herald_bus::store::reader::{load_checkpoint, read_stream_of};
use tracing::{info, warn};

use crate::apply::{ProjectError, RowKey, failure_of, write_rows};
use crate::table::VersionTable;

/// Most parked events one look replays; the others wait for the next look.
const REPLAY_BATCH: i64 = 100;

/// What refolding the document of a parked event came to.
enum Refolded {
    /// The document's row, under its key.
    Row(RowKey, DocumentState),
    /// Why the event still cannot be applied, as its parked row records it.
    Failed(String),
}

/// Applies again the version's parked events that an operator asked to replay, in one
/// transaction. Only the holder of the version's lease calls this, on the lease's connection,
/// so the rows cannot race the version's own writes, and its checkpoint stays where it is while
/// the documents are read up to it.
pub async fn replay_requested(
    client: &mut ClientWrapper,
    table: &VersionTable,
) -> Result<(), ProjectError> {
    let tx = client.transaction().await?;
    let requests = parked::requested(&*tx, &table.checkpoint, REPLAY_BATCH).await?;
    if !requests.is_empty() {
        let until = load_checkpoint(&*tx, &table.checkpoint).await?;
        for request in &requests {
            replay(&tx, table, request, until).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Replays one parked event: writes its document's row and drops the parked row, or keeps the
/// parked row with the new error.
async fn replay(
    tx: &Transaction<'_>,
    table: &VersionTable,
    request: &ReplayRequest,
    until: LogPosition,
) -> Result<(), ProjectError> {
    let reader = table.checkpoint.as_str();
    match refold(tx, request.position, until).await? {
        Refolded::Row(key, state) => {
            let rows = HashMap::from([(key.clone(), state)]);
            write_rows(tx, table, &[key], &rows).await?;
            parked::replayed(&**tx, reader, request.position).await?;
            info!(
                reader,
                position = %request.position,
                event_id = ?request.event_id,
                "parked event re-applied"
            );
        }
        Refolded::Failed(error) => {
            parked::replay_failed(&**tx, reader, request.position, &error).await?;
            warn!(
                reader,
                position = %request.position,
                event_id = ?request.event_id,
                error,
                "parked event still cannot be applied; it stays parked"
            );
        }
    }
    Ok(())
}

/// The document of the event at `at`, folded from nothing over its events up to `until`.
async fn refold(
    tx: &Transaction<'_>,
    at: LogPosition,
    until: LogPosition,
) -> Result<Refolded, ProjectError> {
    let events = match read_stream_of(&**tx, at, until).await? {
        Ok(events) => events,
        Err(failure) => return Ok(Refolded::Failed(recorded(&failure, at))),
    };
    let mut state = None;
    for event in &events {
        match event.fold(state.take()) {
            Ok(next) => state = Some(next),
            Err(error) => return Ok(Refolded::Failed(recorded(&failure_of(event, &error), at))),
        }
    }
    Ok(match (events.first(), state) {
        (Some(first), Some(state)) => {
            Refolded::Row((first.tenant.clone(), first.document_id), state)
        }
        _ => Refolded::Failed("the event is no longer in the log".into()),
    })
}

/// A failure as the parked row at `at` records it: as parking did when it is that event's own,
/// else with the position of the other event of the document that fails.
fn recorded(failure: &EventFailure, at: LogPosition) -> String {
    if failure.position == at {
        failure.recorded()
    } else {
        failure.to_string()
    }
}
