//! Where a group's signals are read from: the instance folders, and, for
//! instances already terminated, the store.
//!
//! A terminated instance's folder is removed, but its signals still matter
//! (a `FAILURE` from an instance that was replaced must still fail a stack
//! waiting for signals). So before a folder is removed, each signal file is
//! copied into the store's append-only event log (subject
//! `instance/<instance-id>`, kind `cfn-signal`, time = the file's), once.

use autopatch_model::Timestamp;
use autopatch_store::{InstanceRow, Store};

use crate::error::StoreContext;
use crate::metadata::InstanceFolder;
use crate::signal::{Signal, parse_signal};
use crate::{FleetError, clock};

const SIGNAL_EVENT: &str = "cfn-signal";

fn subject(instance_id: &str) -> String {
    format!("instance/{instance_id}")
}

/// The file name an archived signal came from.
fn archived_name(detail: &str) -> &str {
    detail.lines().next().and_then(|line| line.strip_prefix("file=")).unwrap_or_default()
}

/// Copies the folder's signals into the store, each file once (archiving
/// again after an interruption adds only what is missing).
pub(crate) fn archive_signals(
    store: &Store,
    folder: &InstanceFolder,
    instance_id: &str,
) -> Result<(), FleetError> {
    let subject = subject(instance_id);
    let events = store.events(&subject).store_context("reading the signals of", instance_id)?;
    let archived: Vec<&str> = events
        .iter()
        .filter(|event| event.kind == SIGNAL_EVENT)
        .map(|event| archived_name(&event.detail))
        .collect();
    let mut files = folder.signal_files()?;
    files.retain(|file| !archived.contains(&file.name.as_str()));
    files.sort_by(|left, right| (left.modified, &left.name).cmp(&(right.modified, &right.name)));
    for file in files {
        // The file name goes first as a key the parser ignores.
        let detail = format!("file={}\n{}", file.name, file.text);
        store
            .append_event(&subject, SIGNAL_EVENT, &detail, clock::timestamp_of(file.modified))
            .store_context("archiving the signals of", instance_id)?;
    }
    Ok(())
}

/// A signal with what orders it.
pub(crate) struct TimedSignal {
    pub(crate) at: Timestamp,
    pub(crate) instance_id: String,
    pub(crate) name: String,
    pub(crate) signal: Signal,
}

/// The signals of the given instances, oldest first. Files that do not
/// parse are skipped (only the script writes there, so they are not signals).
pub(crate) fn signals_of(
    store: &Store,
    instances_dir: &std::path::Path,
    rows: &[InstanceRow],
) -> Result<Vec<Signal>, FleetError> {
    let mut signals: Vec<TimedSignal> = Vec::new();
    for row in rows {
        let folder = InstanceFolder::new(instances_dir, &row.instance_id);
        if folder.exists() {
            for file in folder.signal_files()? {
                if let Ok(signal) = parse_signal(&file.text) {
                    signals.push(TimedSignal {
                        at: clock::timestamp_of(file.modified),
                        instance_id: row.instance_id.clone(),
                        name: file.name,
                        signal,
                    });
                }
            }
            continue;
        }
        let events = store
            .events(&subject(&row.instance_id))
            .store_context("reading the signals of", &row.instance_id)?;
        for event in events.into_iter().filter(|event| event.kind == SIGNAL_EVENT) {
            if let Ok(signal) = parse_signal(&event.detail) {
                let name = archived_name(&event.detail).to_string();
                signals.push(TimedSignal {
                    at: event.at,
                    instance_id: row.instance_id.clone(),
                    name,
                    signal,
                });
            }
        }
    }
    signals.sort_by(|left, right| {
        (left.at, &left.instance_id, &left.name).cmp(&(right.at, &right.instance_id, &right.name))
    });
    Ok(signals.into_iter().map(|timed| timed.signal).collect())
}
