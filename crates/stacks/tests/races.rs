//! Requests racing on one stack, on real Podman with the shipped lab
//! templates. Each race is made deterministic by an engine wrapper whose
//! image lookup for one image holds until the test lets it go: the request
//! that looks that image up (an `UpdateStack` checking its images) has read
//! the stack and waits inside its checks while the other request runs.
//! - Two updates: the one that began first but checks longer is refused
//!   ("is in UPDATE_IN_PROGRESS state and can not be updated"); the stack's
//!   recorded parameters are those of the update that ran, and so is the
//!   image its instances run. A delete during that update is refused as
//!   CloudFormation refuses it.
//! - An update and a delete: the delete starts, the update is refused
//!   ("is in DELETE_IN_PROGRESS state"), and the delete ends with nothing
//!   left running.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopatch_engine::{
    ContainerInfo, ContainerSpec, DockerEngine, Engine, EngineError, EngineInfo, ExecResult,
    ExecSpec, ImageInfo, OutputSink,
};
use autopatch_stacks::StackService;
use autopatch_stacks::api::*;
use autopatch_store::Store;
use support::{WEBAPP, config, parameter, repo_root};
use tokio::sync::oneshot;

/// One held image lookup: who is told it began, and what lets it go.
struct Hold {
    reference: String,
    entered: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// Podman, except that the next lookup of one chosen image waits until the
/// test releases it.
struct Gated {
    inner: Arc<DockerEngine>,
    hold: Mutex<Option<Hold>>,
}

impl Gated {
    /// Holds the next lookup of `reference`: the first receiver completes
    /// when it has begun, and sending on the second lets it go on.
    fn hold(&self, reference: &str) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (entered, entered_receiver) = oneshot::channel();
        let (release_sender, release) = oneshot::channel();
        *self.hold.lock().unwrap() = Some(Hold { reference: reference.into(), entered, release });
        (entered_receiver, release_sender)
    }
}

impl Engine for Gated {
    async fn info(&self) -> Result<EngineInfo, EngineError> {
        self.inner.info().await
    }

    async fn image_inspect(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        let held = {
            let mut hold = self.hold.lock().unwrap();
            if hold.as_ref().is_some_and(|hold| hold.reference == reference) {
                hold.take()
            } else {
                None
            }
        };
        if let Some(hold) = held {
            let _ = hold.entered.send(());
            let _ = hold.release.await;
        }
        self.inner.image_inspect(reference).await
    }

    async fn image_import(
        &self,
        tarball: &Path,
        reference: &str,
        changes: &[String],
    ) -> Result<ImageInfo, EngineError> {
        self.inner.image_import(tarball, reference, changes).await
    }

    async fn image_tag(&self, image: &str, reference: &str) -> Result<(), EngineError> {
        self.inner.image_tag(image, reference).await
    }

    async fn image_remove(&self, reference: &str) -> Result<(), EngineError> {
        self.inner.image_remove(reference).await
    }

    async fn container_create(&self, spec: &ContainerSpec) -> Result<ContainerInfo, EngineError> {
        self.inner.container_create(spec).await
    }

    async fn container_start(&self, id: &str) -> Result<(), EngineError> {
        self.inner.container_start(id).await
    }

    async fn container_stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        self.inner.container_stop(id, grace).await
    }

    async fn container_remove(&self, id: &str) -> Result<(), EngineError> {
        self.inner.container_remove(id).await
    }

    async fn container_inspect(&self, id: &str) -> Result<Option<ContainerInfo>, EngineError> {
        self.inner.container_inspect(id).await
    }

    async fn container_list(
        &self,
        labels: &[(String, String)],
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        self.inner.container_list(labels).await
    }

    async fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
        sink: &mut (dyn OutputSink + Send),
    ) -> Result<ExecResult, EngineError> {
        self.inner.exec(id, spec, sink).await
    }

    async fn put_file(
        &self,
        id: &str,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), EngineError> {
        self.inner.put_file(id, path, contents, mode).await
    }

    async fn commit(
        &self,
        id: &str,
        reference: &str,
        changes: &[String],
    ) -> Result<ImageInfo, EngineError> {
        self.inner.commit(id, reference, changes).await
    }

    async fn network_ensure(&self, name: &str) -> Result<(), EngineError> {
        self.inner.network_ensure(name).await
    }

    async fn network_ensure_labelled(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        self.inner.network_ensure_labelled(name, labels).await
    }

    async fn network_remove(&self, name: &str) -> Result<(), EngineError> {
        self.inner.network_remove(name).await
    }
}

/// The lab's base and app stacks (one instance, on the webapp image) over
/// the gated engine, and two other names of the webapp image to update to.
struct Race {
    _dir: tempfile::TempDir,
    engine: Arc<Gated>,
    service: Arc<StackService<Gated>>,
    app: String,
    images: [String; 2],
}

impl Race {
    async fn new() -> Race {
        let inner = autopatch_testkit::engine().await;
        autopatch_testkit::ensure_webapp(&inner).await;
        // Two more names of the webapp image (its id, whole and short), not
        // tags: Podman loses image names when tags are added and removed at
        // once, as tests running side by side would.
        let id = inner.image_inspect(WEBAPP).await.unwrap().expect("the webapp image").id;
        let id = id.trim_start_matches("sha256:").to_owned();
        let images = [format!("sha256:{id}"), id[..12].to_owned()];
        let engine = Arc::new(Gated { inner, hold: Mutex::new(None) });
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("autopatch.db")).unwrap());
        let service =
            StackService::open(config(dir.path()), engine.clone(), store.clone()).await.unwrap();
        let race = Race { _dir: dir, engine, service, app: String::new(), images };
        let base = race.create("pattern3-base", &[]).await;
        assert_eq!(base.stack_status, "CREATE_COMPLETE", "{base:?}");
        let parameters = [
            ("BaselineVpcStack", "pattern3-base"),
            ("AmazonMachineImage", WEBAPP),
            ("NumberOfInstanceCluster", "1"),
        ];
        let app = race.create("pattern3-app", &parameters).await;
        assert_eq!(app.stack_status, "CREATE_COMPLETE", "{app:?}");
        Race { app: app.stack_id, ..race }
    }

    async fn create(&self, name: &str, parameters: &[(&str, &str)]) -> Stack {
        let path = repo_root().join("templates").join(format!("{name}.yml"));
        let input = CreateStackInput {
            stack_name: name.into(),
            template_url: Some(format!("file://{}", path.display())),
            parameters: parameters.iter().map(|(key, value)| parameter(key, value)).collect(),
            ..Default::default()
        };
        let created = self.service.create_stack(input).await.unwrap();
        self.service.wait_idle(&created.stack_id).await;
        self.describe(&created.stack_id)
    }

    fn describe(&self, name: &str) -> Stack {
        let input = DescribeStacksInput { stack_name: Some(name.into()) };
        self.service.describe_stacks(input).unwrap().stacks.remove(0)
    }

    /// An update of the app to `image`, every other parameter as it was.
    fn update_to(&self, image: &str) -> UpdateStackInput {
        UpdateStackInput {
            stack_name: "pattern3-app".into(),
            use_previous_template: Some(true),
            parameters: vec![parameter("AmazonMachineImage", image)],
            ..Default::default()
        }
    }

    /// Starts an update of the app to `image` whose image check is held;
    /// returns once the check has begun (the request has read the stack),
    /// with what lets it go and the request's outcome.
    async fn held_update(
        &self,
        image: &str,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<Result<UpdateStackOutput, ApiError>>) {
        let (entered, release) = self.engine.hold(image);
        let service = self.service.clone();
        let input = self.update_to(image);
        let update = tokio::spawn(async move { service.update_stack(input).await });
        entered.await.expect("the update checks its image");
        (release, update)
    }

    /// The stack-level statuses of the app's events, oldest first.
    fn stack_statuses(&self) -> Vec<String> {
        let input = DescribeStackEventsInput { stack_name: self.app.clone() };
        let mut events = self.service.describe_stack_events(input).unwrap().stack_events;
        events.reverse();
        events
            .into_iter()
            .filter(|event| event.logical_resource_id == "pattern3-app")
            .map(|event| event.resource_status)
            .collect()
    }

    /// The image every instance of the app's groups runs, by group.
    fn images_running(&self) -> BTreeMap<String, Vec<String>> {
        let groups = self.service.describe_auto_scaling_groups(Default::default()).unwrap();
        groups
            .auto_scaling_groups
            .into_iter()
            .map(|group| {
                let images =
                    group.instances.into_iter().filter_map(|instance| instance.image_id).collect();
                (group.auto_scaling_group_name, images)
            })
            .collect()
    }

    async fn delete(&self, name: &str) {
        let input = DeleteStackInput { stack_name: name.into(), ..Default::default() };
        let id = self.describe(name).stack_id;
        self.service.delete_stack(input).await.unwrap();
        self.service.wait_idle(&id).await;
        assert_eq!(self.describe(&id).stack_status, "DELETE_COMPLETE");
    }

    async fn tear_down(&self) {
        if self.describe(&self.app).stack_status != "DELETE_COMPLETE" {
            self.delete("pattern3-app").await;
        }
        self.delete("pattern3-base").await;
        self.service.shutdown().await;
    }
}

fn parameter_value(stack: &Stack, key: &str) -> Option<String> {
    stack
        .parameters
        .iter()
        .find(|parameter| parameter.parameter_key == key)
        .and_then(|parameter| parameter.parameter_value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_updates_at_once_one_runs_and_the_other_is_refused() {
    let race = Race::new().await;
    let [green, blue] = &race.images;

    // The green update has read the stack and checks its image; the blue
    // update runs meanwhile.
    let (release, green_update) = race.held_update(green).await;
    race.service.update_stack(race.update_to(blue)).await.expect("the blue update starts");

    // The green update's check ends: the stack is no longer as it read it.
    release.send(()).unwrap();
    let refused = green_update.await.unwrap().unwrap_err();
    assert_eq!(
        (refused.code.as_str(), refused.message),
        (
            "ValidationError",
            format!("Stack:{} is in UPDATE_IN_PROGRESS state and can not be updated.", race.app)
        )
    );

    // While the blue update runs, a delete is refused as CloudFormation
    // refuses it.
    let input = DeleteStackInput { stack_name: "pattern3-app".into(), ..Default::default() };
    let refused = race.service.delete_stack(input).await.unwrap_err();
    assert_eq!(
        (refused.code.as_str(), refused.message.as_str()),
        (
            "ValidationError",
            "Stack [pattern3-app] cannot be deleted while in status UPDATE_IN_PROGRESS"
        )
    );

    race.service.wait_idle(&race.app).await;
    let app = race.describe(&race.app);
    assert_eq!(app.stack_status, "UPDATE_COMPLETE", "{app:?}");
    assert_eq!(parameter_value(&app, "AmazonMachineImage").as_deref(), Some(blue.as_str()));
    let running = race.images_running();
    assert_eq!(running.len(), 1, "one group after the update: {running:?}");
    assert!(
        running.values().all(|images| images == std::slice::from_ref(blue)),
        "the instances run the image the stack records: {running:?}"
    );
    assert_eq!(
        race.stack_statuses(),
        [
            "CREATE_IN_PROGRESS",
            "CREATE_COMPLETE",
            "UPDATE_IN_PROGRESS",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "UPDATE_COMPLETE"
        ],
        "one update ran"
    );

    race.tear_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_an_updates_checks_wins_and_the_update_is_refused() {
    let race = Race::new().await;
    let [green, _] = &race.images;

    let (release, update) = race.held_update(green).await;
    let input = DeleteStackInput { stack_name: "pattern3-app".into(), ..Default::default() };
    race.service.delete_stack(input).await.expect("the delete starts");

    release.send(()).unwrap();
    let refused = update.await.unwrap().unwrap_err();
    let status = race.describe(&race.app).stack_status;
    assert_eq!(
        (refused.code.as_str(), refused.message),
        (
            "ValidationError",
            format!("Stack:{} is in {status} state and can not be updated.", race.app)
        )
    );
    assert!(["DELETE_IN_PROGRESS", "DELETE_COMPLETE"].contains(&status.as_str()), "{status}");

    race.service.wait_idle(&race.app).await;
    assert_eq!(race.describe(&race.app).stack_status, "DELETE_COMPLETE");
    assert_eq!(
        race.stack_statuses(),
        ["CREATE_IN_PROGRESS", "CREATE_COMPLETE", "DELETE_IN_PROGRESS", "DELETE_COMPLETE"],
        "only the delete ran"
    );
    let label = [("autopatch.stack".to_owned(), race.app.clone())];
    let left = race.engine.inner.container_list(&label).await.unwrap();
    assert!(left.is_empty(), "the delete left instances behind: {left:?}");

    race.tear_down().await;
}
