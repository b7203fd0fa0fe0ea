//! The simulation harness: a `FakeEngine` with one parent image, an in-memory
//! store, a temporary artifact root, and an exec handler that plays a small
//! Debian system, so each test reads as documents in, observations out.
//!
//! The handler answers what a build runs:
//! - `dpkg-query`: the parent's manifest, or the upgraded one in a container
//!   where the UpdateOS script has run;
//! - the `sh -c` probes, the dpkg.cfg `cat`, the changelog bundle and the
//!   `apt-get -s` update check;
//! - step scripts (`bash /tmp/autopatch-toe/<component>-<step>.sh`), read
//!   back from the container's files and interpreted line by line:
//!   `echo TEXT` prints, `exit N` exits, and `# sim: ...` directives drive
//!   the simulation (see [`interpret_step_script`]).
//!
//! Anything else exits 127 and is recorded, so a test can assert that the
//! handler understood every command the build sent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use autopatch_documents::SourceFile;
use autopatch_engine::{Call, ExecContext, ExecReply, FakeEngine, Operation};
use autopatch_imagebuilder::{
    BuildError, BuildOutcome, Builder, CollectProgress, StartOptions, StartOutcome,
};
use autopatch_model::ImageState;
use autopatch_store::{BuildRow, Store};
use tokio_util::sync::CancellationToken;

/// The parent image every recipe builds on.
pub(crate) const PARENT: &str = "localhost/test/parent:1";
/// The recipe and pipeline names of [`Sim::with_pipeline`].
pub(crate) const RECIPE: &str = "recipe";
pub(crate) const PIPELINE: &str = "pipe";

const SCRIPT_DIR: &str = "/tmp/autopatch-toe/";

/// The parent's packages: (name, version, source, source version).
const PARENT_PACKAGES: &[(&str, &str, &str, &str)] = &[
    ("base-files", "12.4+deb12u5", "base-files", "12.4+deb12u5"),
    ("libssl3:amd64", "3.0.11-1~deb12u1", "openssl", "3.0.11-1~deb12u1"),
    ("openssl", "3.0.11-1~deb12u1", "openssl", "3.0.11-1~deb12u1"),
];

/// The upgraded openssl packages' version.
pub(crate) const UPGRADED_VERSION: &str = "3.0.11-1~deb12u2";

/// openssl's changelog in the upgraded image: the new entry fixes two CVEs;
/// the old entry's CVE was fixed before the parent was built.
const OPENSSL_CHANGELOG: &str = "\
openssl (3.0.11-1~deb12u2) bookworm-security; urgency=medium

  * Fix CVE-2023-5678: excessive time spent in DH check.
  * Fix CVE-2023-6129: POLY1305 MAC corrupts vector registers on PowerPC.

 -- Debian Security Team <team@security.debian.org>  Sat, 27 Jan 2024 10:00:00 +0000

openssl (3.0.11-1~deb12u1) bookworm; urgency=medium

  * Fix CVE-2023-4807.

 -- Sebastian Andrzej Siewior <sebastian@breakpoint.cc>  Mon, 23 Oct 2023 22:00:00 +0200
";

/// The CVEs the evidence must list for the upgrade.
pub(crate) const FIXED_CVES: &[&str] = &["CVE-2023-5678", "CVE-2023-6129"];

/// What the simulated system remembers between commands.
#[derive(Debug, Default)]
pub(crate) struct World {
    /// Containers in which the UpdateOS script ran.
    upgraded: BTreeSet<String>,
    /// How many times each step script ran, by script path.
    pub(crate) script_runs: BTreeMap<String, u32>,
    /// What `apt-get -s dist-upgrade` prints in an update check.
    pub(crate) pending_updates: String,
    /// The UpdateOS script prints no plan of apt's, whatever it asks.
    pub(crate) plan_withheld: bool,
    /// Commands the handler did not recognise.
    pub(crate) unknown_commands: Vec<String>,
}

/// One simulated host: engine, store, artifacts, and the token the tests
/// cancel builds with.
pub(crate) struct Sim {
    pub(crate) engine: Arc<FakeEngine>,
    pub(crate) builder: Builder<FakeEngine>,
    pub(crate) world: Arc<Mutex<World>>,
    pub(crate) cancel: CancellationToken,
    /// The state directory: artifacts, and the database of [`Sim::on_disk`].
    root: tempfile::TempDir,
}

impl Sim {
    /// A host with the parent image and nothing registered.
    pub(crate) fn new() -> Sim {
        Sim::host(false)
    }

    /// [`Sim::new`] with its store in a file, `<state>/autopatch.db`
    /// ([`Sim::database`]), which another connection can open too.
    pub(crate) fn on_disk() -> Sim {
        Sim::host(true)
    }

    fn host(on_disk: bool) -> Sim {
        let engine = Arc::new(FakeEngine::new());
        engine.add_image(PARENT);
        let world = Arc::new(Mutex::new(World::default()));
        let cancel = CancellationToken::new();
        {
            let world = Arc::clone(&world);
            let cancel = cancel.clone();
            // Weak: the engine holds its handler.
            let killer = Arc::downgrade(&engine);
            engine.set_exec_handler(move |ctx| answer(&world, &cancel, &killer, ctx));
        }
        Sim::on(engine, world, cancel, on_disk)
    }

    /// Another state directory (store and artifacts) on this host: the same
    /// engine, simulated system and cancel token.
    pub(crate) fn beside(&self) -> Sim {
        Sim::on(Arc::clone(&self.engine), Arc::clone(&self.world), self.cancel.clone(), false)
    }

    fn on(
        engine: Arc<FakeEngine>,
        world: Arc<Mutex<World>>,
        cancel: CancellationToken,
        on_disk: bool,
    ) -> Sim {
        let artifacts = tempfile::tempdir().expect("a temporary artifact root");
        let store = if on_disk {
            Store::open(&artifacts.path().join("autopatch.db")).expect("a store in a file")
        } else {
            Store::open_in_memory().expect("an in-memory store")
        };
        let store = Arc::new(store);
        let builder = Builder {
            engine: Arc::clone(&engine),
            store,
            artifacts_root: artifacts.path().join("builds"),
        };
        Sim { engine, builder, world, cancel, root: artifacts }
    }

    /// A host with `components` registered (by their `name:`), a recipe
    /// [`RECIPE`] 1.0.0 on [`PARENT`] running them in order, and a pipeline
    /// [`PIPELINE`] with `pipeline_extra` appended to its document.
    pub(crate) async fn with_pipeline(components: &[Component], pipeline_extra: &str) -> Sim {
        let sim = Sim::new();
        sim.register_all(components, pipeline_extra).await;
        sim
    }

    /// Registers what [`Sim::with_pipeline`] does.
    pub(crate) async fn register_all(&self, components: &[Component], pipeline_extra: &str) {
        for component in components {
            self.register_component(component);
        }
        self.register_recipe(&recipe_yaml(PARENT, components.iter().map(|c| c.name))).await;
        self.register_pipeline(&format!(
            "name: {PIPELINE}\nimageRecipeArn: {RECIPE}\n{pipeline_extra}"
        ));
    }

    /// The engine tag of [`RECIPE`] 1.0.0 build `number` published here.
    pub(crate) fn published(&self, number: u32) -> String {
        autopatch_imagebuilder::engine_reference(
            self.builder.store.engine_namespace(),
            RECIPE,
            "1.0.0",
            number,
        )
    }

    pub(crate) fn register_component(&self, component: &Component) {
        let file = SourceFile::new(format!("{}.yml", component.name), component.yaml());
        autopatch_imagebuilder::create_component(&self.builder.store, &file, None, None)
            .unwrap_or_else(|error| panic!("register component {}: {error}", component.name));
    }

    pub(crate) async fn register_recipe(&self, text: &str) {
        let file = SourceFile::new("recipe.yml", text);
        autopatch_imagebuilder::create_recipe(&self.builder.store, &self.builder.engine, &file)
            .await
            .unwrap_or_else(|error| panic!("register the recipe: {error}"));
    }

    pub(crate) fn register_pipeline(&self, text: &str) {
        let file = SourceFile::new("pipeline.yml", text);
        autopatch_imagebuilder::create_pipeline(&self.builder.store, &file)
            .unwrap_or_else(|error| panic!("register the pipeline: {error}"));
    }

    /// The database file of a [`Sim::on_disk`] store.
    pub(crate) fn database(&self) -> std::path::PathBuf {
        self.root.path().join("autopatch.db")
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    /// Starts [`PIPELINE`] with `options`, collecting progress.
    pub(crate) async fn start_with(
        &self,
        options: &StartOptions,
    ) -> (Result<StartOutcome, BuildError>, CollectProgress) {
        let progress = CollectProgress::default();
        let outcome = autopatch_imagebuilder::start_pipeline(
            &self.builder,
            PIPELINE,
            options,
            &progress,
            &self.cancel,
        )
        .await;
        (outcome, progress)
    }

    /// Starts [`PIPELINE`] and expects a build (whatever its end).
    pub(crate) async fn build(&self) -> (BuildOutcome, CollectProgress) {
        let (outcome, progress) = self.start_with(&StartOptions::default()).await;
        match outcome {
            Ok(StartOutcome::Built(outcome)) => (outcome, progress),
            Ok(other) => panic!("expected a build, got {other:?}"),
            Err(error) => panic!("start failed: {}", autopatch_imagebuilder::error_chain(&error)),
        }
    }

    /// Every tag the engine holds, sorted.
    pub(crate) fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> =
            self.engine.images().into_iter().flat_map(|image| image.tags).collect();
        tags.sort();
        tags
    }

    /// Tags other than the parent's: published images and leftovers.
    pub(crate) fn tags_besides_parent(&self) -> Vec<String> {
        self.tags().into_iter().filter(|tag| tag != PARENT).collect()
    }

    /// Names of the containers the engine still holds.
    pub(crate) fn container_names(&self) -> Vec<String> {
        self.engine.containers().into_iter().map(|container| container.name).collect()
    }

    /// Asserts a failed or cancelled build left nothing: no image row, no
    /// tag besides the parent's, no container.
    pub(crate) fn assert_nothing_left(&self, context: &str) {
        let images = self.builder.store.images().expect("images");
        assert!(images.is_empty(), "{context}: image rows {images:?}");
        assert_eq!(self.tags_besides_parent(), Vec::<String>::new(), "{context}: tags left");
        assert_eq!(self.container_names(), Vec::<String>::new(), "{context}: containers left");
    }

    /// Asserts the handler understood every command the builds sent.
    pub(crate) fn assert_commands_understood(&self) {
        assert_eq!(self.world().unknown_commands, Vec::<String>::new(), "commands not simulated");
    }

    /// Containers created with `autopatch.role=<role>`.
    pub(crate) fn containers_created(&self, role: &str) -> Vec<autopatch_engine::ContainerSpec> {
        self.engine
            .calls_of(Operation::ContainerCreate)
            .into_iter()
            .filter_map(|call| match call {
                Call::ContainerCreate { spec } => Some(spec),
                _ => None,
            })
            .filter(|spec| spec.labels.get("autopatch.role").map(String::as_str) == Some(role))
            .collect()
    }
}

/// The build's `detailedoutput.json`.
pub(crate) fn detailed_output(build: &BuildRow) -> serde_json::Value {
    let path = std::path::Path::new(&build.artifact_dir).join("detailedoutput.json");
    let text = fs_err::read_to_string(&path).expect("detailedoutput.json");
    serde_json::from_str(&text).expect("detailedoutput.json is JSON")
}

/// Every step of a detailed output, one line each:
/// `<phase> <component> <step>: <status> attempts=<n> reboots=<n>`.
pub(crate) fn step_table(output: &serde_json::Value) -> Vec<String> {
    let mut table = Vec::new();
    for phase in output["phases"].as_array().expect("phases") {
        for step in phase["steps"].as_array().expect("steps") {
            table.push(format!(
                "{} {} {}: {} attempts={} reboots={}",
                phase["phase"].as_str().unwrap_or("?"),
                phase["component"].as_str().unwrap_or("?"),
                step["name"].as_str().unwrap_or("?"),
                step["status"].as_str().unwrap_or("?"),
                step["attempts"],
                step["reboots"],
            ));
        }
    }
    table
}

/// The states a build went through, from its progress events.
pub(crate) fn states(progress: &CollectProgress) -> Vec<ImageState> {
    progress
        .events()
        .into_iter()
        .filter_map(|event| match event {
            autopatch_imagebuilder::BuildEvent::State { state, .. } => Some(state),
            _ => None,
        })
        .collect()
}

/// The notes a run reported.
pub(crate) fn notes(progress: &CollectProgress) -> Vec<String> {
    progress
        .events()
        .into_iter()
        .filter_map(|event| match event {
            autopatch_imagebuilder::BuildEvent::Note { message } => Some(message),
            _ => None,
        })
        .collect()
}

// Documents.

/// A component document, as data.
#[derive(Debug, Clone)]
pub(crate) struct Component {
    pub(crate) name: &'static str,
    phases: Vec<(&'static str, Vec<StepSpec>)>,
}

/// One step of a component.
#[derive(Debug, Clone)]
pub(crate) struct StepSpec {
    name: &'static str,
    /// `None`: an UpdateOS step.
    commands: Option<Vec<&'static str>>,
    on_failure: Option<&'static str>,
    max_attempts: Option<u32>,
}

pub(crate) fn component(name: &'static str) -> Component {
    Component { name, phases: Vec::new() }
}

impl Component {
    pub(crate) fn phase(mut self, phase: &'static str, steps: Vec<StepSpec>) -> Component {
        self.phases.push((phase, steps));
        self
    }

    pub(crate) fn yaml(&self) -> String {
        let mut text = format!("name: {}\nschemaVersion: 1.0\nphases:\n", self.name);
        for (phase, steps) in &self.phases {
            let _ = writeln!(text, "  - name: {phase}\n    steps:");
            for step in steps {
                let _ = writeln!(text, "      - name: {}", step.name);
                if let Some(on_failure) = step.on_failure {
                    let _ = writeln!(text, "        onFailure: {on_failure}");
                }
                if let Some(max_attempts) = step.max_attempts {
                    let _ = writeln!(text, "        maxAttempts: {max_attempts}");
                }
                match &step.commands {
                    None => text.push_str("        action: UpdateOS\n"),
                    Some(commands) => {
                        text.push_str(
                            "        action: ExecuteBash\n        inputs:\n          commands:\n",
                        );
                        for command in commands {
                            let quoted = serde_json::to_string(command).expect("a JSON string");
                            let _ = writeln!(text, "            - {quoted}");
                        }
                    }
                }
            }
        }
        text
    }
}

/// An ExecuteBash step running `commands` (see [`interpret_step_script`]).
pub(crate) fn bash(name: &'static str, commands: &[&'static str]) -> StepSpec {
    StepSpec { name, commands: Some(commands.to_vec()), on_failure: None, max_attempts: None }
}

/// An UpdateOS step.
pub(crate) fn update_os(name: &'static str) -> StepSpec {
    StepSpec { name, commands: None, on_failure: None, max_attempts: None }
}

impl StepSpec {
    pub(crate) fn on_failure(mut self, on_failure: &'static str) -> StepSpec {
        self.on_failure = Some(on_failure);
        self
    }

    pub(crate) fn max_attempts(mut self, max_attempts: u32) -> StepSpec {
        self.max_attempts = Some(max_attempts);
        self
    }
}

/// The usual pair: an `update` component (UpdateOS, then a validate step)
/// and a `smoke` component with a test phase.
pub(crate) fn update_and_smoke() -> Vec<Component> {
    vec![
        component("update")
            .phase("build", vec![update_os("UpdateOS")])
            .phase("validate", vec![bash("Validate", &["echo validated"])]),
        component("smoke").phase("test", vec![bash("Smoke", &["echo smoke ok"])]),
    ]
}

/// A recipe [`RECIPE`] 1.0.0 on `parent` running `components` in order.
pub(crate) fn recipe_yaml<'a>(parent: &str, components: impl Iterator<Item = &'a str>) -> String {
    let mut text =
        format!("name: {RECIPE}\nsemanticVersion: 1.0.0\nparentImage: {parent}\ncomponents:\n");
    for name in components {
        let _ = writeln!(text, "  - componentArn: {name}");
    }
    text
}

// The exec handler.

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}

fn answer(
    world: &Mutex<World>,
    cancel: &CancellationToken,
    engine: &Weak<FakeEngine>,
    ctx: &ExecContext,
) -> ExecReply {
    let cmd = &ctx.exec.cmd;
    if *cmd == autopatch_evidence::dpkg_query_command() {
        let upgraded = lock(world).upgraded.contains(&ctx.container.id);
        return ExecReply::exit(0).stdout(manifest(upgraded));
    }
    let reply = match cmd.as_slice() {
        [sh, dash_c, script] if sh == "sh" && dash_c == "-c" => shell(world, script),
        // `[timeout -k 10 <n>s] bash <script>`.
        [.., bash, path] if bash == "bash" && path.starts_with(SCRIPT_DIR) => {
            match ctx.files.get(path) {
                Some(script) => {
                    step_script(world, cancel, engine, ctx, path, &String::from_utf8_lossy(script))
                }
                None => Some(ExecReply::exit(127).stderr(format!("bash: {path}: no such file\n"))),
            }
        }
        _ => None,
    };
    reply.unwrap_or_else(|| {
        lock(world).unknown_commands.push(ctx.command_line());
        ExecReply::exit(127).stderr(format!("sim: command not simulated: {}\n", ctx.command_line()))
    })
}

/// `dpkg-query` output in `DPKG_QUERY_FORMAT`.
fn manifest(upgraded: bool) -> String {
    let mut text = String::new();
    for (name, version, source, source_version) in PARENT_PACKAGES {
        let (version, source_version) = if upgraded && *source == "openssl" {
            (UPGRADED_VERSION, UPGRADED_VERSION)
        } else {
            (*version, *source_version)
        };
        let _ = writeln!(text, "{name}\t{version}\tamd64\t{source}\t{source_version}\tii ");
    }
    text
}

fn shell(world: &Mutex<World>, script: &str) -> Option<ExecReply> {
    if script == "command -v dpkg-query >/dev/null 2>&1" {
        return Some(ExecReply::exit(0));
    }
    if script.starts_with("cat /etc/dpkg/dpkg.cfg") {
        return Some(ExecReply::exit(0).stdout("# dpkg configuration\n"));
    }
    if script.contains("autopatch_changelog()") {
        return Some(ExecReply::exit(0).stdout(changelog_bundle(script)));
    }
    if script.contains("apt-get -s -o Debug::NoLocking=1 dist-upgrade") {
        let pending = lock(world).pending_updates.clone();
        return Some(ExecReply::exit(0).stdout(format!("Reading package lists...\n{pending}")));
    }
    None
}

/// The output of the changelog bundle script: one section per
/// `autopatch_changelog 'name' ...` line, in the bundle's format.
fn changelog_bundle(script: &str) -> String {
    let mut out = String::new();
    for line in script.lines() {
        let Some(rest) = line.strip_prefix("autopatch_changelog '") else { continue };
        let Some((name, _)) = rest.split_once('\'') else { continue };
        let _ = writeln!(out, "@@autopatch-changelog {name}");
        let package = name.split(':').next().unwrap_or(name);
        if matches!(package, "openssl" | "libssl3") {
            let _ = write!(out, "{OPENSSL_CHANGELOG}\n@@autopatch-end {name}\n");
        } else {
            let _ = writeln!(out, "@@autopatch-missing {name}");
        }
    }
    out
}

/// Runs a step script: an UpdateOS script (recognised by its apt-get
/// upgrade) upgrades the container; anything else goes to
/// [`interpret_step_script`].
fn step_script(
    world: &Mutex<World>,
    cancel: &CancellationToken,
    engine: &Weak<FakeEngine>,
    ctx: &ExecContext,
    path: &str,
    script: &str,
) -> Option<ExecReply> {
    let run = {
        let mut world = lock(world);
        let runs = world.script_runs.entry(path.to_owned()).or_default();
        *runs += 1;
        *runs
    };
    if script.contains("apt-get dist-upgrade -y") {
        let plan = {
            let mut world = lock(world);
            world.upgraded.insert(ctx.container.id.clone());
            if world.plan_withheld { String::new() } else { apt_plan(script) }
        };
        return Some(
            ExecReply::exit(0)
                .stdout(plan)
                .stdout(format!("Unpacking openssl ({UPGRADED_VERSION}) ...\n"))
                .stdout(format!("Setting up openssl ({UPGRADED_VERSION}) ...\n")),
        );
    }
    let reply = interpret_step_script(script, run, cancel);
    // `# sim: the container is killed`: the container dies with the step
    // (as `podman kill` does it); the step's process ends with 137.
    if script.lines().any(|line| line.trim() == "# sim: the container is killed") {
        if let Some(engine) = engine.upgrade() {
            engine.kill(&ctx.container.id, 137).expect("the step's container exists");
        }
        return Some(ExecReply { exit_code: 137, ..reply });
    }
    Some(reply)
}

/// What an UpdateOS script prints of apt's plan: its `echo "@@autopatch-apt-plan..."`
/// lines, with apt's `Inst` lines for the openssl upgrade (from the
/// security archive) between the first two; nothing when the script prints
/// no plan.
fn apt_plan(script: &str) -> String {
    let markers: Vec<&str> = script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("echo \"@@autopatch-apt-plan"))
        .map(|rest| rest.trim_end_matches('"'))
        .collect();
    let [begin, end, ..] = markers[..] else { return String::new() };
    let mut plan = format!("@@autopatch-apt-plan{begin}\n");
    for (name, version, _, _) in PARENT_PACKAGES.iter().filter(|p| p.2 == "openssl") {
        let name = name.split(':').next().unwrap_or(name);
        let _ = writeln!(
            plan,
            "Inst {name} [{version}] ({UPGRADED_VERSION} Debian-Security:12/oldstable-security [amd64])"
        );
    }
    plan.push_str(&format!("@@autopatch-apt-plan{end}\n"));
    plan
}

/// Interprets a step script, line by line, for its `run`-th execution:
/// - `echo TEXT` prints `TEXT`;
/// - `exit N` ends the script with `N`;
/// - `# sim: fail K times with exit N` ends the first `K` runs with `N`;
/// - `# sim: cancel` cancels the test's token (as a user pressing Ctrl-C
///   while the step runs) and goes on;
/// - `# sim: the container is killed` (see [`step_script`]) kills the
///   step's container: the script ends there, with exit code 137.
fn interpret_step_script(script: &str, run: u32, cancel: &CancellationToken) -> ExecReply {
    let mut reply = ExecReply::exit(0);
    for line in script.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("echo ") {
            reply = reply.stdout(format!("{text}\n"));
        } else if let Some(code) = line.strip_prefix("exit ") {
            reply.exit_code = code.parse().expect("exit N");
            return reply;
        } else if let Some(rule) = line.strip_prefix("# sim: fail ") {
            let (times, code) = rule.split_once(" times with exit ").expect("a fail rule");
            if run <= times.parse().expect("K") {
                reply.exit_code = code.parse().expect("N");
                return reply;
            }
        } else if line == "# sim: cancel" {
            cancel.cancel();
        } else if line == "# sim: the container is killed" {
            return reply;
        }
    }
    reply
}
