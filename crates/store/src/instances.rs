//! Fleet instances: one row per instance an Auto Scaling group launched.
//!
//! Lifecycle and health are stored as AWS names them (`Pending`, `InService`,
//! `Terminating`, `Terminated`; `Healthy`, `Unhealthy`). `Terminated` is
//! final: no update moves a row out of it, so a late write from a slow
//! launch cannot resurrect an instance that was already given up.

use std::fmt;
use std::str::FromStr;

use autopatch_model::Timestamp;
use rusqlite::{OptionalExtension, Row, params};

use crate::Store;
use crate::error::{QueryContext, StoreError};

/// Where an instance is in its life, with Auto Scaling's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LifecycleState {
    /// Recorded, container being created or started.
    Pending,
    /// Running and counted towards the group's capacity.
    InService,
    /// Being drained, stopped and removed.
    Terminating,
    /// Gone (final).
    Terminated,
}

impl LifecycleState {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Pending => "Pending",
            LifecycleState::InService => "InService",
            LifecycleState::Terminating => "Terminating",
            LifecycleState::Terminated => "Terminated",
        }
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for LifecycleState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "Pending" => Ok(LifecycleState::Pending),
            "InService" => Ok(LifecycleState::InService),
            "Terminating" => Ok(LifecycleState::Terminating),
            "Terminated" => Ok(LifecycleState::Terminated),
            other => Err(format!("unknown lifecycle state {other:?}")),
        }
    }
}

/// An instance's health as its group sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "Healthy",
            HealthStatus::Unhealthy => "Unhealthy",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for HealthStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "Healthy" => Ok(HealthStatus::Healthy),
            "Unhealthy" => Ok(HealthStatus::Unhealthy),
            other => Err(format!("unknown health status {other:?}")),
        }
    }
}

/// One instance of an Auto Scaling group (the `instances` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    /// `i-` and 17 hex digits.
    pub instance_id: String,
    pub group_name: String,
    pub stack_id: Option<String>,
    /// The launch configuration (or template) it was launched from.
    pub launch_config: String,
    /// The image id its metadata reports (`ami-id`).
    pub image: String,
    /// The engine's id of the image its container runs.
    pub engine_image_id: String,
    pub instance_type: String,
    /// Availability zone.
    pub zone: String,
    pub subnet: Option<String>,
    pub lifecycle: LifecycleState,
    pub health: HealthStatus,
    /// The load balancer's view (`initial`, `healthy`, `unhealthy`,
    /// `draining`, `unused`), when registered with a target group.
    pub target_health: Option<String>,
    pub container_id: Option<String>,
    pub private_ip: Option<String>,
    /// The host port (on 127.0.0.1) its target port is published on.
    pub host_port: Option<u16>,
    /// Why it was terminated or why its launch failed.
    pub reason: Option<String>,
    pub launched_at: Timestamp,
    pub updated_at: Timestamp,
    pub terminated_at: Option<Timestamp>,
}

const INSTANCE_COLUMNS: &str = "instance_id, group_name, stack_id, launch_config, image, \
     engine_image_id, instance_type, zone, subnet, lifecycle, health, target_health, \
     container_id, private_ip, host_port, reason, launched_at, updated_at, terminated_at";

impl Store {
    /// Records a new instance. Instance ids are unique: a second insert of
    /// the same id is refused.
    pub fn insert_instance(&self, row: &InstanceRow) -> Result<(), StoreError> {
        let result = self.lock().execute(
            &format!(
                "INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
            ),
            params![
                row.instance_id,
                row.group_name,
                row.stack_id,
                row.launch_config,
                row.image,
                row.engine_image_id,
                row.instance_type,
                row.zone,
                row.subnet,
                row.lifecycle.as_str(),
                row.health.as_str(),
                row.target_health,
                row.container_id,
                row.private_ip,
                row.host_port,
                row.reason,
                row.launched_at.millis(),
                row.updated_at.millis(),
                row.terminated_at.map(Timestamp::millis),
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::AlreadyExists { kind: "instance", name: row.instance_id.clone() })
            }
            Err(source) => Err(StoreError::Query { what: "insert an instance", source }),
        }
    }

    pub fn instance(&self, instance_id: &str) -> Result<Option<InstanceRow>, StoreError> {
        self.lock()
            .query_row(
                &format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?1"),
                [instance_id],
                instance_from_row,
            )
            .optional()
            .context("read an instance")
    }

    /// A group's instances, oldest launch first; terminated ones only when asked.
    pub fn instances_of_group(
        &self,
        group_name: &str,
        include_terminated: bool,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        self.instance_rows(
            "WHERE group_name = ?1 AND (?2 OR lifecycle <> 'Terminated')",
            params![group_name, include_terminated],
        )
    }

    /// Every instance not yet terminated, of every group, oldest launch first.
    pub fn live_instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        self.instance_rows("WHERE lifecycle <> 'Terminated'", params![])
    }

    fn instance_rows(
        &self,
        filter: &str,
        parameters: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<InstanceRow>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM instances {filter} ORDER BY launched_at, instance_id"
            ))
            .context("list instances")?;
        let rows = statement
            .query_map(parameters, instance_from_row)
            .context("list instances")?
            .collect::<Result<Vec<_>, _>>()
            .context("read instances")?;
        Ok(rows)
    }

    /// Moves an instance to `lifecycle`, recording `reason` when given (an
    /// earlier reason is kept otherwise). `Terminated` is final: an instance
    /// already terminated (or unknown) is left as it is and `false` returned.
    pub fn set_instance_lifecycle(
        &self,
        instance_id: &str,
        lifecycle: LifecycleState,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let terminated_at = (lifecycle == LifecycleState::Terminated).then_some(now.millis());
        let changed = self
            .lock()
            .execute(
                "UPDATE instances SET lifecycle = ?2, reason = COALESCE(?3, reason), updated_at = ?4,
                 terminated_at = COALESCE(?5, terminated_at)
                 WHERE instance_id = ?1 AND lifecycle <> 'Terminated'",
                params![instance_id, lifecycle.as_str(), reason, now.millis(), terminated_at],
            )
            .context("update an instance's lifecycle")?;
        Ok(changed == 1)
    }

    /// Records what the engine reports of a live instance's container. Returns
    /// `false` when the instance is unknown or terminated.
    pub fn set_instance_runtime(
        &self,
        instance_id: &str,
        container_id: Option<&str>,
        private_ip: Option<&str>,
        host_port: Option<u16>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE instances SET container_id = ?2, private_ip = ?3, host_port = ?4, updated_at = ?5
                 WHERE instance_id = ?1 AND lifecycle <> 'Terminated'",
                params![instance_id, container_id, private_ip, host_port, now.millis()],
            )
            .context("update an instance's container")?;
        Ok(changed == 1)
    }

    /// Records a live instance's health. Returns `false` when the instance is
    /// unknown or terminated.
    pub fn set_instance_health(
        &self,
        instance_id: &str,
        health: HealthStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE instances SET health = ?2, updated_at = ?3
                 WHERE instance_id = ?1 AND lifecycle <> 'Terminated'",
                params![instance_id, health.as_str(), now.millis()],
            )
            .context("update an instance's health")?;
        Ok(changed == 1)
    }

    /// Records the load balancer's view of a live instance (`None`: not
    /// registered). Returns `false` when the instance is unknown or terminated.
    pub fn set_instance_target_health(
        &self,
        instance_id: &str,
        target_health: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE instances SET target_health = ?2, updated_at = ?3
                 WHERE instance_id = ?1 AND lifecycle <> 'Terminated'",
                params![instance_id, target_health, now.millis()],
            )
            .context("update an instance's target health")?;
        Ok(changed == 1)
    }
}

fn instance_from_row(r: &Row<'_>) -> rusqlite::Result<InstanceRow> {
    Ok(InstanceRow {
        instance_id: r.get(0)?,
        group_name: r.get(1)?,
        stack_id: r.get(2)?,
        launch_config: r.get(3)?,
        image: r.get(4)?,
        engine_image_id: r.get(5)?,
        instance_type: r.get(6)?,
        zone: r.get(7)?,
        subnet: r.get(8)?,
        lifecycle: parse_column(r, 9)?,
        health: parse_column(r, 10)?,
        target_health: r.get(11)?,
        container_id: r.get(12)?,
        private_ip: r.get(13)?,
        host_port: r.get(14)?,
        reason: r.get(15)?,
        launched_at: Timestamp(r.get(16)?),
        updated_at: Timestamp(r.get(17)?),
        terminated_at: r.get::<_, Option<i64>>(18)?.map(Timestamp),
    })
}

fn parse_column<T: FromStr<Err = String>>(r: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = r.get(index)?;
    text.parse().map_err(|message: String| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            message.into(),
        )
    })
}

#[cfg(test)]
mod tests {
    //! Instance rows against a real SQLite file, like the crate's other
    //! tests (these live here so the instances module stays self-contained).

    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open(&directory.path().join("autopatch.db")).expect("the store opens");
        (directory, store)
    }

    fn pending(instance_id: &str, group_name: &str, launched_at: i64) -> InstanceRow {
        InstanceRow {
            instance_id: instance_id.into(),
            group_name: group_name.into(),
            stack_id: Some("arn:aws:cloudformation:local:000000000000:stack/app/1".into()),
            launch_config: "app-LaunchConfig-1".into(),
            image: "webapp/1.0.0/1".into(),
            engine_image_id: "sha256:abc".into(),
            instance_type: "m1.large".into(),
            zone: "local-1a".into(),
            subnet: Some("subnet-1".into()),
            lifecycle: LifecycleState::Pending,
            health: HealthStatus::Healthy,
            target_health: None,
            container_id: None,
            private_ip: None,
            host_port: None,
            reason: None,
            launched_at: Timestamp(launched_at),
            updated_at: Timestamp(launched_at),
            terminated_at: None,
        }
    }

    #[test]
    fn an_instance_round_trips_and_ids_are_unique() {
        let (_directory, store) = store();
        let row = pending("i-00000000000000001", "web", 10);
        store.insert_instance(&row).expect("insert");
        assert_eq!(store.instance("i-00000000000000001").expect("read"), Some(row.clone()));
        let error = store.insert_instance(&row).expect_err("the id is taken");
        assert!(matches!(error, StoreError::AlreadyExists { kind: "instance", .. }), "{error}");
        assert_eq!(store.instance("i-absent").expect("read"), None);
    }

    #[test]
    fn runtime_health_and_lifecycle_updates_are_recorded() {
        let (_directory, store) = store();
        store.insert_instance(&pending("i-1", "web", 10)).expect("insert");
        assert!(
            store
                .set_instance_runtime(
                    "i-1",
                    Some("c0ffee"),
                    Some("10.89.0.5"),
                    Some(32768),
                    Timestamp(11)
                )
                .expect("runtime")
        );
        assert!(
            store
                .set_instance_lifecycle("i-1", LifecycleState::InService, None, Timestamp(12))
                .expect("in service")
        );
        assert!(
            store.set_instance_target_health("i-1", Some("healthy"), Timestamp(13)).expect("tg")
        );
        assert!(
            store
                .set_instance_health("i-1", HealthStatus::Unhealthy, Timestamp(14))
                .expect("health")
        );
        let row = store.instance("i-1").expect("read").expect("present");
        assert_eq!(row.container_id.as_deref(), Some("c0ffee"));
        assert_eq!(row.private_ip.as_deref(), Some("10.89.0.5"));
        assert_eq!(row.host_port, Some(32768));
        assert_eq!(row.lifecycle, LifecycleState::InService);
        assert_eq!(row.target_health.as_deref(), Some("healthy"));
        assert_eq!(row.health, HealthStatus::Unhealthy);
        assert_eq!(row.updated_at, Timestamp(14));
        assert_eq!(row.terminated_at, None);
    }

    #[test]
    fn terminated_is_final_and_keeps_its_reason() {
        let (_directory, store) = store();
        store.insert_instance(&pending("i-1", "web", 10)).expect("insert");
        let reason = "an EC2 health check indicated it was stopped";
        assert!(
            store
                .set_instance_lifecycle(
                    "i-1",
                    LifecycleState::Terminating,
                    Some(reason),
                    Timestamp(20)
                )
                .expect("terminating")
        );
        assert!(
            store
                .set_instance_lifecycle("i-1", LifecycleState::Terminated, None, Timestamp(21))
                .expect("terminated")
        );
        let row = store.instance("i-1").expect("read").expect("present");
        assert_eq!(row.reason.as_deref(), Some(reason), "the reason given earlier stays");
        assert_eq!(row.terminated_at, Some(Timestamp(21)));

        // Nothing moves it out of Terminated, and nothing else changes it.
        for lifecycle in [LifecycleState::InService, LifecycleState::Terminated] {
            assert!(
                !store
                    .set_instance_lifecycle("i-1", lifecycle, None, Timestamp(30))
                    .expect("refused")
            );
        }
        assert!(
            !store
                .set_instance_runtime("i-1", Some("c"), None, None, Timestamp(30))
                .expect("refused")
        );
        assert!(
            !store
                .set_instance_health("i-1", HealthStatus::Healthy, Timestamp(30))
                .expect("refused")
        );
        assert!(
            !store
                .set_instance_target_health("i-1", Some("healthy"), Timestamp(30))
                .expect("refused")
        );
        assert_eq!(store.instance("i-1").expect("read").expect("present"), row);
        assert!(
            !store
                .set_instance_lifecycle("i-absent", LifecycleState::InService, None, Timestamp(30))
                .expect("unknown")
        );
    }

    #[test]
    fn groups_list_their_live_instances_oldest_first() {
        let (_directory, store) = store();
        store.insert_instance(&pending("i-3", "web", 30)).expect("insert");
        store.insert_instance(&pending("i-1", "web", 10)).expect("insert");
        store.insert_instance(&pending("i-2", "web", 20)).expect("insert");
        store.insert_instance(&pending("i-9", "other", 5)).expect("insert");
        store
            .set_instance_lifecycle(
                "i-2",
                LifecycleState::Terminated,
                Some("scale in"),
                Timestamp(40),
            )
            .expect("terminate");

        let ids = |rows: Vec<InstanceRow>| -> Vec<String> {
            rows.into_iter().map(|row| row.instance_id).collect()
        };
        assert_eq!(ids(store.instances_of_group("web", false).expect("live")), ["i-1", "i-3"]);
        assert_eq!(ids(store.instances_of_group("web", true).expect("all")), ["i-1", "i-2", "i-3"]);
        assert_eq!(ids(store.live_instances().expect("live")), ["i-9", "i-1", "i-3"]);
        assert!(store.instances_of_group("absent", true).expect("none").is_empty());
    }

    #[test]
    fn rows_survive_reopening_the_file() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("autopatch.db");
        {
            let store = Store::open(&path).expect("open");
            store.insert_instance(&pending("i-1", "web", 10)).expect("insert");
            store
                .set_instance_lifecycle("i-1", LifecycleState::InService, None, Timestamp(11))
                .expect("in service");
        }
        let store = Store::open(&path).expect("reopen");
        let row = store.instance("i-1").expect("read").expect("present");
        assert_eq!(row.lifecycle, LifecycleState::InService);
    }
}
