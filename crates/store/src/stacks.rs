//! Stacks, their resources and their events.
//!
//! A stack row holds the template text and parameter values it runs with,
//! so a restarted daemon can evaluate it again; resource rows hold what each
//! resource became (physical id, attributes) and are written before the
//! resource is acted on; events are append-only.

use autopatch_model::{ResourceStatus, StackStatus, Timestamp};
use rusqlite::{OptionalExtension, Row, params};

use crate::error::{QueryContext, StoreError};
use crate::store::Store;

/// One stack, live or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRow {
    /// `arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>`.
    pub stack_id: String,
    pub name: String,
    pub status: StackStatus,
    pub status_reason: Option<String>,
    pub template_body: String,
    /// Where the template came from, for diagnostics.
    pub template_source: String,
    /// The parameter values, a JSON object of strings.
    pub parameters: String,
    /// The outputs, a JSON array in DescribeStacks' `Outputs` shape.
    pub outputs: String,
    /// The export names this stack imports, a JSON array.
    pub imports: String,
    pub disable_rollback: bool,
    pub client_token: Option<String>,
    /// During an update: what the stack ran with before (for rollback).
    pub previous_template_body: Option<String>,
    pub previous_template_source: Option<String>,
    pub previous_parameters: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
}

/// What a stack's resource became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResourceRow {
    pub stack_id: String,
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: Option<String>,
    pub status: ResourceStatus,
    pub status_reason: Option<String>,
    /// The evaluated properties it was created with (JSON).
    pub properties: String,
    /// Its `Fn::GetAtt` attributes and local runtime facts (JSON object).
    pub attributes: String,
    /// During a replacing update: the replaced resource (JSON), until cleanup.
    pub replaced: Option<String>,
    pub updated_at: Timestamp,
}

/// One line of DescribeStackEvents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEventRow {
    pub seq: i64,
    pub event_id: String,
    pub stack_id: String,
    pub stack_name: String,
    pub logical_id: String,
    pub physical_id: Option<String>,
    pub resource_type: String,
    /// A stack or resource status name.
    pub status: String,
    pub reason: Option<String>,
    pub at: Timestamp,
}

/// How [`Store::insert_stack`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertStack {
    Inserted,
    /// A live stack already has that name; here it is.
    NameTaken(Box<StackRow>),
}

const STACK_COLUMNS: &str = "stack_id, name, status, status_reason, template_body, \
     template_source, parameters, outputs, imports, disable_rollback, client_token, \
     previous_template_body, previous_template_source, previous_parameters, created_at, \
     updated_at, deleted_at";

const RESOURCE_COLUMNS: &str = "stack_id, logical_id, resource_type, physical_id, status, \
     status_reason, properties, attributes, replaced, updated_at";

const EVENT_COLUMNS: &str = "seq, event_id, stack_id, stack_name, logical_id, physical_id, \
     resource_type, status, reason, at";

impl Store {
    /// Inserts a new stack unless a live stack has its name.
    pub fn insert_stack(&self, row: &StackRow) -> Result<InsertStack, StoreError> {
        let mut connection = self.lock();
        let tx = crate::store::write_transaction(&mut connection, "begin stack insert")?;
        let existing = tx
            .query_row(
                &format!(
                    "SELECT {STACK_COLUMNS} FROM stacks WHERE name = ?1 AND deleted_at IS NULL"
                ),
                [&row.name],
                stack_from_row,
            )
            .optional()
            .context("look up stack by name")?;
        if let Some(existing) = existing {
            return Ok(InsertStack::NameTaken(Box::new(existing)));
        }
        tx.execute(
            &format!(
                "INSERT INTO stacks ({STACK_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
            ),
            params![
                row.stack_id,
                row.name,
                row.status.as_str(),
                row.status_reason,
                row.template_body,
                row.template_source,
                row.parameters,
                row.outputs,
                row.imports,
                row.disable_rollback,
                row.client_token,
                row.previous_template_body,
                row.previous_template_source,
                row.previous_parameters,
                row.created_at.0,
                row.updated_at.0,
                row.deleted_at.map(|at| at.0),
            ],
        )
        .context("insert stack")?;
        tx.commit().context("commit stack insert")?;
        Ok(InsertStack::Inserted)
    }

    /// A stack by id (live or deleted), or the live stack with that name.
    pub fn stack(&self, name_or_id: &str) -> Result<Option<StackRow>, StoreError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {STACK_COLUMNS} FROM stacks WHERE stack_id = ?1 \
                     OR (name = ?1 AND deleted_at IS NULL)"
                ),
                [name_or_id],
                stack_from_row,
            )
            .optional()
            .context("read stack")
    }

    /// Every stack, oldest first; deleted ones only when asked.
    pub fn stacks(&self, include_deleted: bool) -> Result<Vec<StackRow>, StoreError> {
        let filter = if include_deleted { "" } else { "WHERE deleted_at IS NULL" };
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {STACK_COLUMNS} FROM stacks {filter} ORDER BY created_at, rowid"
            ))
            .context("list stacks")?;
        let rows = statement.query_map([], stack_from_row).context("list stacks")?;
        rows.collect::<Result<_, _>>().context("read stacks")
    }

    /// Sets a stack's status; `DELETE_COMPLETE` also marks it deleted.
    pub fn set_stack_status(
        &self,
        stack_id: &str,
        status: StackStatus,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let deleted_at = (status == StackStatus::DeleteComplete).then_some(now.0);
        self.lock()
            .execute(
                "UPDATE stacks SET status = ?2, status_reason = ?3, updated_at = ?4, \
                 deleted_at = COALESCE(?5, deleted_at) WHERE stack_id = ?1",
                params![stack_id, status.as_str(), reason, now.0, deleted_at],
            )
            .context("set stack status")?;
        Ok(())
    }

    /// Sets a stack's status only if it still is `from`; returns whether it
    /// did. Two writers (an operation moving on, a user cancelling an
    /// update) cannot overwrite each other's transition.
    pub fn set_stack_status_from(
        &self,
        stack_id: &str,
        from: StackStatus,
        status: StackStatus,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let deleted_at = (status == StackStatus::DeleteComplete).then_some(now.0);
        let changed = self
            .lock()
            .execute(
                "UPDATE stacks SET status = ?2, status_reason = ?3, updated_at = ?4, \
                 deleted_at = COALESCE(?5, deleted_at) WHERE stack_id = ?1 AND status = ?6",
                params![stack_id, status.as_str(), reason, now.0, deleted_at, from.as_str()],
            )
            .context("set stack status")?;
        Ok(changed == 1)
    }

    /// Records a stack's evaluated outputs and the exports it imports.
    pub fn set_stack_outputs(
        &self,
        stack_id: &str,
        outputs: &str,
        imports: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "UPDATE stacks SET outputs = ?2, imports = ?3, updated_at = ?4 WHERE stack_id = ?1",
                params![stack_id, outputs, imports, now.0],
            )
            .context("set stack outputs")?;
        Ok(())
    }

    /// Starts an update: the new template and parameters become current and
    /// the old ones are kept for a rollback.
    pub fn begin_stack_update(
        &self,
        stack_id: &str,
        template_body: &str,
        template_source: &str,
        parameters: &str,
        status: StackStatus,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "UPDATE stacks SET previous_template_body = template_body, \
                 previous_template_source = template_source, previous_parameters = parameters, \
                 template_body = ?2, template_source = ?3, parameters = ?4, status = ?5, \
                 status_reason = NULL, updated_at = ?6 WHERE stack_id = ?1",
                params![
                    stack_id,
                    template_body,
                    template_source,
                    parameters,
                    status.as_str(),
                    now.0
                ],
            )
            .context("begin stack update")?;
        Ok(())
    }

    /// Starts an update (`UPDATE_IN_PROGRESS`, the new template, parameters
    /// and imports current, the old ones kept for a rollback) only if the
    /// stack is still as `seen` was read: same status, not changed since
    /// (`updated_at`). Returns whether it did; of two requests that read the
    /// stack at once (two updates, an update and a delete), one starts and
    /// the other writes nothing.
    pub fn begin_stack_update_from(
        &self,
        seen: &StackRow,
        template_body: &str,
        template_source: &str,
        parameters: &str,
        imports: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE stacks SET previous_template_body = template_body, \
                 previous_template_source = template_source, previous_parameters = parameters, \
                 template_body = ?2, template_source = ?3, parameters = ?4, imports = ?5, \
                 status = ?6, status_reason = NULL, updated_at = ?7 \
                 WHERE stack_id = ?1 AND status = ?8 AND updated_at = ?9 AND deleted_at IS NULL",
                params![
                    seen.stack_id,
                    template_body,
                    template_source,
                    parameters,
                    imports,
                    StackStatus::UpdateInProgress.as_str(),
                    now.0,
                    seen.status.as_str(),
                    seen.updated_at.0,
                ],
            )
            .context("begin stack update")?;
        Ok(changed == 1)
    }

    /// Ends an update: on rollback the previous template and parameters
    /// become current again; either way the previous ones are forgotten.
    pub fn end_stack_update(
        &self,
        stack_id: &str,
        restore_previous: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let restore = if restore_previous {
            "template_body = COALESCE(previous_template_body, template_body), \
             template_source = COALESCE(previous_template_source, template_source), \
             parameters = COALESCE(previous_parameters, parameters), "
        } else {
            ""
        };
        self.lock()
            .execute(
                &format!(
                    "UPDATE stacks SET {restore} previous_template_body = NULL, \
                     previous_template_source = NULL, previous_parameters = NULL, \
                     updated_at = ?2 WHERE stack_id = ?1"
                ),
                params![stack_id, now.0],
            )
            .context("end stack update")?;
        Ok(())
    }

    /// Inserts or replaces a resource row.
    pub fn put_stack_resource(&self, row: &StackResourceRow) -> Result<(), StoreError> {
        self.lock()
            .execute(
                // An upsert, not INSERT OR REPLACE: the row keeps its rowid,
                // so resources stay listed in the order they were first made.
                &format!(
                    "INSERT INTO stack_resources ({RESOURCE_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT (stack_id, logical_id) DO UPDATE SET \
                     resource_type = excluded.resource_type, physical_id = excluded.physical_id, \
                     status = excluded.status, status_reason = excluded.status_reason, \
                     properties = excluded.properties, attributes = excluded.attributes, \
                     replaced = excluded.replaced, updated_at = excluded.updated_at"
                ),
                params![
                    row.stack_id,
                    row.logical_id,
                    row.resource_type,
                    row.physical_id,
                    row.status.as_str(),
                    row.status_reason,
                    row.properties,
                    row.attributes,
                    row.replaced,
                    row.updated_at.0,
                ],
            )
            .context("write stack resource")?;
        Ok(())
    }

    /// A stack's resources, in the order they were first written.
    pub fn stack_resources(&self, stack_id: &str) -> Result<Vec<StackResourceRow>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {RESOURCE_COLUMNS} FROM stack_resources WHERE stack_id = ?1 ORDER BY rowid"
            ))
            .context("list stack resources")?;
        let rows =
            statement.query_map([stack_id], resource_from_row).context("list stack resources")?;
        rows.collect::<Result<_, _>>().context("read stack resources")
    }

    /// The resource of a live stack with this physical id (subnets, target
    /// groups and launch configurations are looked up across stacks).
    pub fn stack_resource_by_physical_id(
        &self,
        physical_id: &str,
    ) -> Result<Option<StackResourceRow>, StoreError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {RESOURCE_COLUMNS} FROM stack_resources WHERE physical_id = ?1 \
                     AND status NOT IN ('DELETE_COMPLETE', 'DELETE_SKIPPED') \
                     AND stack_id IN (SELECT stack_id FROM stacks WHERE deleted_at IS NULL) \
                     ORDER BY rowid DESC LIMIT 1"
                ),
                [physical_id],
                resource_from_row,
            )
            .optional()
            .context("find resource by physical id")
    }

    /// A live stack's `AWS::EC2::LaunchTemplate` by its `LaunchTemplateName`.
    pub fn launch_template_by_name(
        &self,
        name: &str,
    ) -> Result<Option<StackResourceRow>, StoreError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {RESOURCE_COLUMNS} FROM stack_resources \
                     WHERE resource_type = 'AWS::EC2::LaunchTemplate' \
                     AND json_extract(attributes, '$.\"autopatch:Local\".Name') = ?1 \
                     AND status NOT IN ('DELETE_COMPLETE', 'DELETE_SKIPPED') \
                     AND stack_id IN (SELECT stack_id FROM stacks WHERE deleted_at IS NULL) \
                     ORDER BY rowid DESC LIMIT 1"
                ),
                [name],
                resource_from_row,
            )
            .optional()
            .context("find launch template by name")
    }

    /// Appends an event. Events are never changed or removed.
    pub fn append_stack_event(&self, row: &StackEventRow) -> Result<i64, StoreError> {
        let connection = self.lock();
        connection
            .execute(
                "INSERT INTO stack_events (event_id, stack_id, stack_name, logical_id, \
                 physical_id, resource_type, status, reason, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    row.event_id,
                    row.stack_id,
                    row.stack_name,
                    row.logical_id,
                    row.physical_id,
                    row.resource_type,
                    row.status,
                    row.reason,
                    row.at.0,
                ],
            )
            .context("append stack event")?;
        Ok(connection.last_insert_rowid())
    }

    /// A stack's events, oldest first.
    pub fn stack_events(&self, stack_id: &str) -> Result<Vec<StackEventRow>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM stack_events WHERE stack_id = ?1 ORDER BY seq"
            ))
            .context("list stack events")?;
        let rows = statement.query_map([stack_id], event_from_row).context("list stack events")?;
        rows.collect::<Result<_, _>>().context("read stack events")
    }
}

fn parse_status<T: std::str::FromStr>(r: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = r.get(index)?;
    text.parse().map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(error),
        )
    })
}

fn stack_from_row(r: &Row<'_>) -> rusqlite::Result<StackRow> {
    Ok(StackRow {
        stack_id: r.get(0)?,
        name: r.get(1)?,
        status: parse_status(r, 2)?,
        status_reason: r.get(3)?,
        template_body: r.get(4)?,
        template_source: r.get(5)?,
        parameters: r.get(6)?,
        outputs: r.get(7)?,
        imports: r.get(8)?,
        disable_rollback: r.get(9)?,
        client_token: r.get(10)?,
        previous_template_body: r.get(11)?,
        previous_template_source: r.get(12)?,
        previous_parameters: r.get(13)?,
        created_at: Timestamp(r.get(14)?),
        updated_at: Timestamp(r.get(15)?),
        deleted_at: r.get::<_, Option<i64>>(16)?.map(Timestamp),
    })
}

fn resource_from_row(r: &Row<'_>) -> rusqlite::Result<StackResourceRow> {
    Ok(StackResourceRow {
        stack_id: r.get(0)?,
        logical_id: r.get(1)?,
        resource_type: r.get(2)?,
        physical_id: r.get(3)?,
        status: parse_status(r, 4)?,
        status_reason: r.get(5)?,
        properties: r.get(6)?,
        attributes: r.get(7)?,
        replaced: r.get(8)?,
        updated_at: Timestamp(r.get(9)?),
    })
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<StackEventRow> {
    Ok(StackEventRow {
        seq: r.get(0)?,
        event_id: r.get(1)?,
        stack_id: r.get(2)?,
        stack_name: r.get(3)?,
        logical_id: r.get(4)?,
        physical_id: r.get(5)?,
        resource_type: r.get(6)?,
        status: r.get(7)?,
        reason: r.get(8)?,
        at: Timestamp(r.get(9)?),
    })
}
