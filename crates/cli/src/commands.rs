//! One function per subcommand: parse-free, they call the library crates and
//! hand results to [`crate::render`].

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use autopatch_engine::DockerEngine;
use autopatch_engine::{ContainerSpec, Engine};
use autopatch_imagebuilder::{
    BootstrapError, BootstrapRequest, BuildError, BuildEvent, BuildOutcome, Builder, BuiltBy,
    CancelCause, CheckStep, ImageEvidence, NETWORK, PARENT_EVENT, Progress as _, Registered,
    Sources, StartOptions, StartOutcome, runner_gone,
};
use autopatch_model::ImageState;
use autopatch_store::{BuildComponentRow, BuildRow, EventRow, ImageRow, Store};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::context::{Access, Context, read_source, scratch_store};
use crate::render::{self, CliError, ProgressPrinter};
use crate::{
    BuildCommand, Cli, Command, ComponentCommand, ImageCommand, OutputFormat, PipelineCommand,
    RecipeCommand,
};
use crate::{lifecycle, stack};

pub(crate) async fn run(cli: Cli) -> ExitCode {
    let json = cli.output == OutputFormat::Json;
    let state_dir = cli.state_dir;
    let result = async {
        // The control plane's commands and its clients do not open the store.
        let ctx = |access| Context::open(state_dir.clone(), access);
        match cli.command {
            // An engine image needs no state: a registered one is looked up
            // where there is state, and none is made.
            Command::Image(ImageCommand::CheckUpdates { image, image_sources_only }) => {
                let ctx = Context::open_if_present(state_dir.clone())?;
                check_updates(ctx.as_ref(), &state_dir, &image, image_sources_only, json).await
            }
            Command::Image(command) => {
                let access = match command {
                    ImageCommand::Bootstrap(_) => Access::Create,
                    ImageCommand::List
                    | ImageCommand::Show { .. }
                    | ImageCommand::Diff { .. }
                    | ImageCommand::CheckUpdates { .. } => Access::Existing,
                };
                image(&ctx(access)?, command, json).await
            }
            // A document alone: no state is read or made.
            Command::Component(ComponentCommand::Validate { file, name, version }) => {
                validate_component(&file, name.as_deref(), &version, json)
            }
            Command::Component(ComponentCommand::Create { file, name, version }) => {
                let source = read_source(&file)?;
                let version = version.to_string();
                let register = |store: &Store| {
                    autopatch_imagebuilder::create_component(
                        store,
                        &source,
                        name.as_deref(),
                        Some(&version),
                    )
                };
                if !Context::has_state(&state_dir) {
                    register(&scratch_store()?).map_err(CliError::from_registry)?;
                }
                let ctx = ctx(Access::Create)?;
                registered(register(&ctx.store).map_err(CliError::from_registry)?, json)
            }
            Command::Component(ComponentCommand::List) => {
                let rows =
                    ctx(Access::Existing)?.store.components().map_err(CliError::from_error)?;
                documents_list(
                    rows.iter().map(|r| {
                        (r.name.as_str(), Some(r.version.as_str()), r.source_name.as_str())
                    }),
                    json,
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Recipe(RecipeCommand::Create { file }) => {
                let source = read_source(&file)?;
                let engine = Arc::new(DockerEngine::connect().await.map_err(CliError::from_error)?);
                if !Context::has_state(&state_dir) {
                    autopatch_imagebuilder::create_recipe(&scratch_store()?, &engine, &source)
                        .await
                        .map_err(CliError::from_registry)?;
                }
                let ctx = ctx(Access::Create)?;
                let result = autopatch_imagebuilder::create_recipe(&ctx.store, &engine, &source)
                    .await
                    .map_err(CliError::from_registry)?;
                registered(result, json)
            }
            Command::Recipe(RecipeCommand::List) => {
                let rows = ctx(Access::Existing)?.store.recipes().map_err(CliError::from_error)?;
                documents_list(
                    rows.iter().map(|r| {
                        (r.name.as_str(), Some(r.version.as_str()), r.source_name.as_str())
                    }),
                    json,
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Pipeline(PipelineCommand::Create { file }) => {
                let source = read_source(&file)?;
                let register =
                    |store: &Store| autopatch_imagebuilder::create_pipeline(store, &source);
                if !Context::has_state(&state_dir) {
                    register(&scratch_store()?).map_err(CliError::from_registry)?;
                }
                let ctx = ctx(Access::Create)?;
                registered(register(&ctx.store).map_err(CliError::from_registry)?, json)
            }
            Command::Pipeline(PipelineCommand::List) => {
                let rows =
                    ctx(Access::Existing)?.store.pipelines().map_err(CliError::from_error)?;
                documents_list(
                    rows.iter().map(|r| (r.name.as_str(), None, r.source_name.as_str())),
                    json,
                );
                Ok(ExitCode::SUCCESS)
            }
            // A start runs a registered pipeline: where there is no state,
            // none is registered, and none is made.
            Command::Pipeline(PipelineCommand::Start { name, client_token, force, verbose }) => {
                let options = StartOptions { client_token, force, ..StartOptions::default() };
                pipeline_start(&ctx(Access::Existing)?, name, options, verbose, json).await
            }
            // Cancelling too needs a build recorded there.
            Command::Build(command) => build(&ctx(Access::Existing)?, command, json).await,
            Command::Serve(args) => lifecycle::serve(&state_dir, args).await,
            Command::Up(args) => lifecycle::up(&state_dir, args, json).await,
            Command::Down => lifecycle::down(&state_dir, json).await,
            Command::Stack(command) => stack::stack(&state_dir, command, json).await,
            Command::Targets { target_group } => {
                stack::targets(&state_dir, target_group, json).await
            }
            Command::Fleet { group } => stack::fleet(&state_dir, group, json).await,
            Command::Watch(args) => crate::watch::watch(args, json).await,
        }
    }
    .await;
    match result {
        Ok(code) => code,
        Err(error) => render::report_as(&error, json),
    }
}

fn registered(result: Registered, json: bool) -> Result<ExitCode, CliError> {
    if json {
        render::json(
            &json!({"kind": result.kind, "name": result.name, "version": result.version, "created": result.created(), "updated": result.updated()}),
        );
    } else {
        let version = result.version.as_ref().map(|v| format!("/{v}")).unwrap_or_default();
        render::line(&format!("{} {}{version}: {}", result.kind, result.name, result.outcome()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every check `component create` makes, without the store: the document,
/// and the name and version it would be registered under.
fn validate_component(
    file: &std::path::Path,
    name: Option<&str>,
    version: &autopatch_model::SemanticVersion,
    json: bool,
) -> Result<ExitCode, CliError> {
    let source = read_source(file)?;
    let version = version.to_string();
    let document = autopatch_imagebuilder::validate_component(&source, name, Some(&version))
        .map_err(CliError::from_registry)?
        .document;
    let steps: usize = document.phases.iter().map(|p| p.steps.len()).sum();
    if json {
        render::json(
            &json!({"file": source.name, "valid": true, "phases": document.phases.len(), "steps": steps}),
        );
    } else {
        render::line(&format!(
            "{}: valid ({} phases, {steps} steps)",
            source.name,
            document.phases.len()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn documents_list<'a>(rows: impl Iterator<Item = (&'a str, Option<&'a str>, &'a str)>, json: bool) {
    let rows: Vec<_> = rows.collect();
    if json {
        render::json(&Value::Array(
            rows.iter().map(|(name, version, source)| json!({"name": name, "version": version, "source": source})).collect(),
        ));
    } else {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|(n, v, s)| vec![n.to_string(), v.unwrap_or("-").to_string(), s.to_string()])
            .collect();
        render::table(&["NAME", "VERSION", "SOURCE"], &rows);
    }
}

/// `pipeline start`.
async fn pipeline_start(
    ctx: &Context,
    name: String,
    options: StartOptions,
    verbose: bool,
    json: bool,
) -> Result<ExitCode, CliError> {
    let builder = ctx.builder().await?;
    let cancel = CancellationToken::new();
    let interrupt = Interrupt::listen_with_cause(&cancel, Some(options.cancel_cause.clone()))?;
    let progress = ProgressPrinter::new(verbose);
    let outcome = {
        let mut start = Box::pin(autopatch_imagebuilder::start_pipeline(
            &builder, &name, &options, &progress, &cancel,
        ));
        let result = tokio::select! {
            result = &mut start => result,
            () = cancel.cancelled() => {
                if progress.build_started() {
                    // The build has its row: it sees the token, stops,
                    // removes its containers and ends CANCELLED.
                    render::note(&format!(
                        "interrupted ({}): cancelling the build (cleaning up)...",
                        interrupt.name()
                    ));
                    start.await
                } else {
                    // Still deciding (recovery, the start condition's
                    // update check): stop there; no build is created.
                    drop(start);
                    remove_own_check_containers(builder.engine.as_ref()).await;
                    render::note(&format!(
                        "interrupted ({}): stopped before starting a build; nothing was built",
                        interrupt.name()
                    ));
                    return Ok(interrupt.exit_code());
                }
            }
        };
        result.map_err(|error| match error {
            BuildError::Registry(error) => CliError::from_registry(error),
            error @ BuildError::ClientTokenMismatch { .. } => CliError::new(error.to_string())
                .with_hint("a client token names one start of one pipeline: use a new token"),
            error @ BuildError::UpdateCheck { .. } => CliError::from_error(error).with_hint(
                "nothing was built: the start condition needs every package source of the \
                 latest image to answer; fix the source (or the network), or build anyway \
                 with --force",
            ),
            error => CliError::from_error(error),
        })?
    };
    // A token used before names its build (another pipeline's is
    // refused above); one still running is followed to its end.
    let outcome = match outcome {
        StartOutcome::Built(outcome) if !outcome.started && !outcome.build.state.is_terminal() => {
            let build =
                match follow_build(ctx, &builder, &outcome.build, &progress, &cancel, &interrupt)
                    .await?
                {
                    Ok(build) => build,
                    Err(code) => return Ok(code),
                };
            let image = ctx.store.image(&build.image_version()).map_err(CliError::from_error)?;
            StartOutcome::Built(BuildOutcome { build, image, started: false })
        }
        outcome => outcome,
    };
    match outcome {
        StartOutcome::Skipped { reason, latest } => {
            if json {
                render::json(
                    &json!({"started": false, "reason": reason, "latestImage": latest.version}),
                );
            } else {
                render::line(&format!("skipped: {reason}"));
            }
            Ok(ExitCode::SUCCESS)
        }
        StartOutcome::Built(outcome) => {
            let build = &outcome.build;
            if json {
                let mut value = BuildRecords::read(ctx, build.clone())?.json();
                value["started"] = json!(outcome.started);
                if let Some(image) = &outcome.image {
                    value["image"] = image_json(image);
                }
                render::json(&value);
            } else {
                if !outcome.started {
                    render::note(&format!(
                        "client token already used by build {}: not started again",
                        build.id
                    ));
                }
                match &outcome.image {
                    Some(image) => {
                        render::line(&format!(
                            "image {} AVAILABLE ({})",
                            image.version, image.engine_reference
                        ));
                        print_evidence_summary(image);
                    }
                    None => {
                        // The reason goes to stderr once, with the
                        // progress; stdout gets the result alone.
                        if !progress.end_shown() {
                            progress.event(BuildEvent::State {
                                state: build.state,
                                reason: build.reason.clone(),
                            });
                        }
                        render::line(&format!("build {} {}", build.id, build.state));
                    }
                }
                render::note(&format!("artifacts: {}", build.artifact_dir));
            }
            Ok(ExitCode::from(start_exit_code(build.state, interrupt.signal())))
        }
    }
}

/// The exit code of `pipeline start` whose build ended in `state`: 0
/// `AVAILABLE`, 1 `FAILED`, and for `CANCELLED` 128 + the signal this
/// process received, or 130 (as Ctrl-C) when `build cancel` cancelled it.
fn start_exit_code(state: ImageState, signal: Option<i32>) -> u8 {
    match state {
        ImageState::Available => 0,
        ImageState::Cancelled => {
            signal.and_then(|number| u8::try_from(128 + number).ok()).unwrap_or(130)
        }
        // No start ends DELETED; an image deleted since is not available.
        ImageState::Failed | ImageState::Deleted => 1,
        ImageState::Pending | ImageState::Building | ImageState::Testing => unreachable!(
            "pipeline start reports a build only once it has ended: `start_pipeline` returns \
             when its build does, and a build an earlier start runs is followed until it ends \
             (here: {state})"
        ),
    }
}

/// Ends the builds whose runner died as `pipeline start` does before it
/// starts (the recovery: their containers removed, `FAILED`), so they show as
/// what they are, and removes the containers dead processes of this state
/// directory left (an interrupted update check's too). Without an engine
/// they are left as they are, with a note for each such build.
async fn recover_orphans(ctx: &Context) -> Result<Vec<String>, CliError> {
    let builds = ctx.store.builds().map_err(CliError::from_error)?;
    let orphans: Vec<&BuildRow> = builds.iter().filter(|build| runner_gone(build)).collect();
    // Run even when no build's runner died: a killed `pipeline start` may
    // have left only its update-check container, which no build names.
    let recovered = match ctx.builder().await {
        Ok(builder) => builder.recover().await.map_err(CliError::from_error),
        Err(error) => Err(error),
    };
    match recovered {
        Ok(ended) => Ok(ended),
        Err(error) => {
            for build in orphans {
                render::note(&format!(
                    "note: build {} is {} but its runner (pid {}) is gone; it could not be cleaned \
                     up now: {}",
                    build.id,
                    build.state,
                    build.owner_pid.map_or_else(|| "unknown".to_owned(), |pid| pid.to_string()),
                    error.message
                ));
            }
            Ok(Vec::new())
        }
    }
}

async fn build(ctx: &Context, command: BuildCommand, json: bool) -> Result<ExitCode, CliError> {
    if matches!(command, BuildCommand::List | BuildCommand::Show { .. }) {
        recover_orphans(ctx).await?;
    }
    match command {
        BuildCommand::List => {
            let builds = ctx.store.builds().map_err(CliError::from_error)?;
            let records = builds
                .into_iter()
                .map(|build| BuildRecords::read(ctx, build))
                .collect::<Result<Vec<_>, _>>()?;
            if json {
                render::json(&Value::Array(records.iter().map(BuildRecords::json).collect()));
            } else {
                let rows: Vec<Vec<String>> = records
                    .iter()
                    .map(|records| {
                        let b = &records.build;
                        vec![
                            b.id.clone(),
                            b.image_version(),
                            records.parent_or_reference().to_owned(),
                            b.state.to_string(),
                            b.created_at.to_string(),
                            first_line(b.reason.as_deref().unwrap_or_default()),
                        ]
                    })
                    .collect();
                render::table(&["BUILD", "VERSION", "PARENT", "STATE", "STARTED", "REASON"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        BuildCommand::Show { id } => {
            let build = ctx.store.build(&id).map_err(CliError::from_error)?.ok_or_else(|| {
                CliError::new(format!("build {id} not found"))
                    .with_hint("list builds with `autopatch build list`")
            })?;
            let records = BuildRecords::read(ctx, build)?;
            if json {
                render::json(&records.show_json());
            } else {
                for text in records.show_lines() {
                    render::line(&text);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BuildCommand::Cancel { id } => {
            if ctx.store.request_cancel(&id).map_err(CliError::from_error)? {
                let orphan =
                    ctx.store.build(&id).map_err(CliError::from_error)?.filter(runner_gone);
                let Some(orphan) = orphan else {
                    render::line(&format!(
                        "cancel requested for build {id}; it ends CANCELLED within a second or two"
                    ));
                    return Ok(ExitCode::SUCCESS);
                };
                // Nobody is left to act on the request: finish it now.
                let builder = ctx.builder().await?;
                builder.recover().await.map_err(CliError::from_error)?;
                let build = ctx.store.build(&id).map_err(CliError::from_error)?;
                let state = build.as_ref().map_or(orphan.state, |build| build.state);
                render::line(&format!(
                    "build {id} had lost its runner (pid {}): its containers were removed and it \
                     is now {state}",
                    orphan.owner_pid.map_or_else(|| "unknown".to_owned(), |pid| pid.to_string())
                ));
                Ok(ExitCode::SUCCESS)
            } else {
                // Nothing to cancel: say whether the build ended or never was.
                match ctx.store.build(&id).map_err(CliError::from_error)? {
                    Some(build) => Err(CliError::new(format!(
                        "build {id} is not running: it ended {}{}",
                        build.state,
                        build.finished_at.map(|at| format!(" at {at}")).unwrap_or_default()
                    ))
                    .with_hint(format!("`autopatch build show {id}` shows how it ended"))),
                    None => Err(CliError::new(format!("build {id} not found"))
                        .with_hint("`autopatch build list` lists the builds")),
                }
            }
        }
    }
}

async fn image(ctx: &Context, command: ImageCommand, json: bool) -> Result<ExitCode, CliError> {
    match command {
        ImageCommand::Bootstrap(args) => {
            let engine = ctx.engine().await?;
            let request = BootstrapRequest {
                suite: args.suite,
                mirror: args.mirror,
                name: args.name,
                version: args.version.to_string(),
                include: args.include,
                work_dir: ctx.work_dir(),
            };
            let progress = ProgressPrinter::new(false);
            let cancel = CancellationToken::new();
            let interrupt = Interrupt::listen(&cancel)?;
            let bootstrap = autopatch_imagebuilder::bootstrap_cancellable(
                &engine, &ctx.store, &request, &progress, &cancel,
            );
            let row = match bootstrap.await {
                Ok(row) => row,
                Err(BootstrapError::Cancelled) => {
                    render::note(&format!(
                        "interrupted ({}): mmdebstrap stopped and its files removed; no image was \
                         made",
                        interrupt.name()
                    ));
                    return Ok(interrupt.exit_code());
                }
                Err(error) => return Err(CliError::from_error(error)),
            };
            if json {
                render::json(&image_json(&row));
            } else {
                render::line(&format!(
                    "image {} AVAILABLE ({}, {} packages)",
                    row.version,
                    row.engine_reference,
                    evidence_of(&row).map(|e| e.package_count).unwrap_or(0)
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::List => {
            let images = ctx.store.images().map_err(CliError::from_error)?;
            if json {
                render::json(&Value::Array(images.iter().map(image_json).collect()));
            } else {
                let rows: Vec<Vec<String>> = images
                    .iter()
                    .map(|image| {
                        let evidence = evidence_of(image);
                        vec![
                            image.version.clone(),
                            image.parent.clone().unwrap_or_else(|| "-".into()),
                            evidence
                                .as_ref()
                                .map(|e| e.upgraded.len().to_string())
                                .unwrap_or_default(),
                            evidence.as_ref().map(|e| e.cves.len().to_string()).unwrap_or_default(),
                            image.created_at.to_string(),
                        ]
                    })
                    .collect();
                render::table(&["IMAGE", "PARENT", "UPGRADED", "CVES", "CREATED"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Show { image, packages } => {
            let row = find_image(ctx, &image)?;
            let (build, components) = match &row.build_id {
                Some(id) => (
                    ctx.store.build(id).map_err(CliError::from_error)?,
                    ctx.store.build_components(id).map_err(CliError::from_error)?,
                ),
                None => (None, Vec::new()),
            };
            if json {
                let mut value = image_json(&row);
                value["components"] = components_json(&components);
                value["buildStartedAt"] = json!(build.as_ref().map(|b| b.created_at.to_string()));
                value["buildFinishedAt"] =
                    json!(build.as_ref().and_then(|b| b.finished_at).map(|t| t.to_string()));
                if packages {
                    value["packages"] = Value::Array(
                        package_rows(&row.manifest).iter().map(PackageRow::json).collect(),
                    );
                }
                render::json(&value);
            } else {
                for text in image_lines(&row, build.as_ref(), &components) {
                    render::line(&text);
                }
                print_evidence_summary(&row);
                if packages {
                    let rows: Vec<Vec<String>> =
                        package_rows(&row.manifest).iter().map(PackageRow::cells).collect();
                    render::table(
                        &[
                            "PACKAGE",
                            "VERSION",
                            "ARCHITECTURE",
                            "SOURCE",
                            "SOURCE-VERSION",
                            "STATUS",
                        ],
                        &rows,
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Diff { from, to } => {
            let from = find_image(ctx, &from)?;
            let to = find_image(ctx, &to)?;
            let builder = ctx.builder().await?;
            let evidence = diff_images(&builder, &from, &to).await?;
            // A diff to an older image undoes fixes: the CVEs the newer
            // versions fixed, read the other way round (in a container from
            // the newer image, whose changelogs have those entries).
            let lost = if evidence.downgraded.is_empty() {
                None
            } else {
                Some(LostFixes::of(&diff_images(&builder, &to, &from).await?))
            };
            if let Some(lost) = &lost {
                render::note(&format!(
                    "warning: this diff is a downgrade: {} package(s) of {} are older in {}, \
                     which loses {} CVE fix(es)",
                    evidence.downgraded.len(),
                    from.version,
                    to.version,
                    lost.all.len()
                ));
            }
            if json {
                let mut value = serde_json::to_value(&evidence).unwrap_or_default();
                value["from"] = json!(from.version);
                value["to"] = json!(to.version);
                value["cves_lost"] = json!(lost.as_ref().map_or(&[][..], |l| &l.all[..]));
                if let (Some(lost), Some(downgraded)) = (&lost, value["downgraded"].as_array_mut())
                {
                    for item in downgraded {
                        let name = item["name"].as_str().unwrap_or_default().to_owned();
                        item["cves"] =
                            json!(lost.by_package.get(&name).cloned().unwrap_or_default());
                    }
                }
                render::json(&value);
            } else {
                render::line(&format!("{} -> {}", from.version, to.version));
                for text in evidence_lines(&evidence, lost.as_ref()) {
                    render::line(&text);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::CheckUpdates { image, image_sources_only } => {
            check_updates(Some(ctx), &ctx.state_dir, &image, image_sources_only, json).await
        }
    }
}

/// `image check-updates`: `image` is a registered image when there is state
/// (`ctx`), else (or when none is registered by that name) an engine image.
/// With state, the check's container carries the state directory's
/// namespace, as a pipeline's check does, so that directory's recovery
/// removes it if this process dies.
async fn check_updates(
    ctx: Option<&Context>,
    state_dir: &Path,
    image: &str,
    image_sources_only: bool,
    json: bool,
) -> Result<ExitCode, CliError> {
    let engine = DockerEngine::connect().await.map(Arc::new).map_err(CliError::from_error)?;
    let registered = match ctx {
        Some(ctx) => autopatch_imagebuilder::find_image(&ctx.store, image)
            .map_err(CliError::from_error)?
            .map(|row| row.engine_image_id),
        None => None,
    };
    let reference = registered.unwrap_or_else(|| image.to_owned());
    if engine.image_inspect(&reference).await.map_err(CliError::from_error)?.is_none() {
        let hint = match ctx {
            Some(_) => "list images with `autopatch image list`".to_owned(),
            None => format!(
                "there is no autopatch state in {}, so only the engine's images are known: \
                 check --state-dir",
                state_dir.display()
            ),
        };
        return Err(CliError::new(format!("image {image:?} not found")).with_hint(hint));
    }
    let sources = if image_sources_only { Sources::Image } else { Sources::WithDebianArchives };
    let cancel = CancellationToken::new();
    let interrupt = Interrupt::listen(&cancel)?;
    let builder = ctx.map(|ctx| Builder {
        engine: Arc::clone(&engine),
        store: Arc::clone(&ctx.store),
        artifacts_root: ctx.artifacts_root(),
    });
    let check: std::pin::Pin<Box<dyn Future<Output = _> + Send + '_>> = match &builder {
        Some(builder) => Box::pin(builder.check_updates(&reference, image, sources)),
        None => Box::pin(autopatch_imagebuilder::check_updates(
            engine.as_ref(),
            &reference,
            image,
            sources,
        )),
    };
    let pending = tokio::select! {
        pending = check => pending.map_err(CliError::from_error)?,
        () = cancel.cancelled() => {
            remove_own_check_containers(engine.as_ref()).await;
            render::note(&format!(
                "interrupted ({}): update check stopped; its container was removed",
                interrupt.name()
            ));
            return Ok(interrupt.exit_code());
        }
    };
    if json {
        render::json(&json!({
            "image": image,
            "supported": pending.supported,
            "pending": pending.updates.len(),
            "security": pending.security_count(),
            "updates": pending.updates.iter().map(|u| json!({
                "package": u.package,
                "current": u.current,
                "candidate": u.candidate,
                "security": u.is_security(),
                "origins": u.origins,
            })).collect::<Vec<_>>(),
        }));
    } else if !pending.supported {
        render::line(&format!("{image}: no apt-get in the image; cannot check for updates"));
    } else {
        render::line(&format!(
            "{image}: {} update(s) pending, {} security",
            pending.updates.len(),
            pending.security_count()
        ));
        let rows: Vec<Vec<String>> = pending
            .updates
            .iter()
            .map(|u| {
                vec![
                    u.package.clone(),
                    u.current.clone().unwrap_or_else(|| "(new)".into()),
                    u.candidate.clone(),
                    if u.is_security() { "security".into() } else { String::new() },
                ]
            })
            .collect();
        if !rows.is_empty() {
            render::table(&["PACKAGE", "INSTALLED", "CANDIDATE", "KIND"], &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Follows a build that another `pipeline start` runs (same client token)
/// until it ends, printing its states. `Err(exit code)` when a signal stopped
/// the following; the build goes on.
async fn follow_build<E: Engine + 'static>(
    ctx: &Context,
    builder: &autopatch_imagebuilder::Builder<E>,
    earlier: &BuildRow,
    progress: &ProgressPrinter,
    cancel: &CancellationToken,
    interrupt: &Interrupt,
) -> Result<Result<BuildRow, ExitCode>, CliError> {
    let id = &earlier.id;
    if !earlier.state.is_terminal() {
        render::note(&format!(
            "client token already used by build {id}, still {}: following it until it ends \
             (a signal stops following, not the build)",
            earlier.state
        ));
    }
    let mut last = earlier.state;
    loop {
        let build = ctx
            .store
            .build(id)
            .map_err(CliError::from_error)?
            .ok_or_else(|| CliError::new(format!("build {id} not found")))?;
        if build.state != last {
            last = build.state;
            // The final state with its reason, as the build's own progress.
            let reason = build.reason.clone().filter(|_| build.state.is_terminal());
            progress.event(BuildEvent::State { state: last, reason });
        }
        if build.state.is_terminal() {
            return Ok(Ok(build));
        }
        if runner_gone(&build) {
            builder.recover().await.map_err(CliError::from_error)?;
            continue;
        }
        tokio::select! {
            () = cancel.cancelled() => {
                render::note(&format!(
                    "interrupted ({}): stopped following build {id}; it goes on \
                     (`autopatch build cancel {id}` stops it)",
                    interrupt.name()
                ));
                return Ok(Err(interrupt.exit_code()));
            }
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP, each handled like Ctrl-C: the first one
/// received cancels the token and is remembered for the exit code
/// (128 + its number, as a shell reports a process the signal ended).
pub(crate) struct Interrupt {
    signal: Arc<AtomicI32>,
}

impl Interrupt {
    const SIGNALS: [(i32, &'static str); 3] = [(2, "SIGINT"), (15, "SIGTERM"), (1, "SIGHUP")];

    pub(crate) fn listen(cancel: &CancellationToken) -> Result<Interrupt, CliError> {
        Interrupt::listen_with_cause(cancel, None)
    }

    /// [`Interrupt::listen`], also recording in `cause` which signal this
    /// process received (before the token is cancelled), so a build it
    /// cancels says so in its reason.
    pub(crate) fn listen_with_cause(
        cancel: &CancellationToken,
        cause: Option<CancelCause>,
    ) -> Result<Interrupt, CliError> {
        use tokio::signal::unix::{SignalKind, signal};
        let received = Arc::new(AtomicI32::new(0));
        for (number, name) in Interrupt::SIGNALS {
            let mut stream = signal(SignalKind::from_raw(number))
                .map_err(|error| CliError::new(format!("cannot handle {name}: {error}")))?;
            let received = Arc::clone(&received);
            let cancel = cancel.clone();
            let cause = cause.clone();
            tokio::spawn(async move {
                if stream.recv().await.is_some() {
                    let first = received
                        .compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                    if let Some(cause) = cause.filter(|_| first) {
                        cause.set(format!(
                            "{name} received by autopatch (pid {})",
                            std::process::id()
                        ));
                    }
                    cancel.cancel();
                }
            });
        }
        Ok(Interrupt { signal: received })
    }

    /// The number of the signal received, if one was.
    fn signal(&self) -> Option<i32> {
        Some(self.signal.load(Ordering::SeqCst)).filter(|number| *number != 0)
    }

    pub(crate) fn name(&self) -> &'static str {
        let number = self.signal.load(Ordering::SeqCst);
        Interrupt::SIGNALS.iter().find(|(n, _)| *n == number).map_or("signal", |(_, name)| name)
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        let number = self.signal.load(Ordering::SeqCst);
        ExitCode::from(u8::try_from(128 + number).unwrap_or(130))
    }
}

/// Removes the update-check containers this process made: an interrupted
/// check is dropped mid-way and never reaches its own cleanup.
async fn remove_own_check_containers<E: Engine>(engine: &E) {
    let labels = [
        ("autopatch.role".to_owned(), "check-updates".to_owned()),
        (autopatch_imagebuilder::OWNER_LABEL.to_owned(), std::process::id().to_string()),
    ];
    match engine.container_list(&labels).await {
        Ok(containers) => {
            for container in containers {
                if let Err(error) = engine.container_remove(&container.id).await {
                    render::note(&format!(
                        "cannot remove the update check's container {}: {error}",
                        container.id
                    ));
                }
            }
        }
        Err(error) => render::note(&format!("cannot list the update check's containers: {error}")),
    }
}

fn find_image(ctx: &Context, reference: &str) -> Result<ImageRow, CliError> {
    autopatch_imagebuilder::find_image(&ctx.store, reference)
        .map_err(CliError::from_error)?
        .ok_or_else(|| {
            CliError::new(format!("image {reference:?} not found"))
                .with_hint("list images with `autopatch image list`")
        })
}

/// Compares two registered images, reading changelogs in a container from
/// the newer one, labelled with the state directory ([`Builder::ownership_labels`]).
async fn diff_images<E: Engine + 'static>(
    builder: &Builder<E>,
    from: &ImageRow,
    to: &ImageRow,
) -> Result<ImageEvidence, CliError> {
    let engine = &builder.engine;
    engine.network_ensure(NETWORK).await.map_err(CliError::from_error)?;
    let mut spec = ContainerSpec {
        image: to.engine_image_id.clone(),
        cmd: vec!["sleep".into(), "infinity".into()],
        init: true,
        ..ContainerSpec::default()
    };
    spec.labels = builder.ownership_labels("diff");
    let container = engine.container_create(&spec).await.map_err(CliError::from_error)?;
    if let Err(error) = engine.container_start(&container.id).await {
        let _ = engine.container_remove(&container.id).await;
        return Err(CliError::from_error(error));
    }
    let container = container.id;
    let result = autopatch_imagebuilder::diff_in_container(
        engine.as_ref(),
        &container,
        &from.manifest,
        &from.version,
        &to.version,
    )
    .await;
    engine.container_remove(&container).await.map_err(CliError::from_error)?;
    result.map_err(CliError::from_error)
}

fn evidence_of(image: &ImageRow) -> Option<ImageEvidence> {
    serde_json::from_str(&image.evidence).ok()
}

fn print_evidence_summary(image: &ImageRow) {
    match evidence_of(image) {
        Some(evidence) => {
            for text in evidence_lines(&evidence, None) {
                render::line(&text);
            }
        }
        None => render::line("evidence   (unreadable)"),
    }
}

/// `image show`'s lines before the evidence: the image, what built it
/// (build, times, recipe, components, checks, who) and its parent.
fn image_lines(
    image: &ImageRow,
    build: Option<&BuildRow>,
    components: &[BuildComponentRow],
) -> Vec<String> {
    let evidence = evidence_of(image);
    let mut lines = vec![
        format!("image      {}", image.version),
        format!("engine     {} ({})", image.engine_reference, image.engine_image_id),
        format!("recipe     {} {}", image.recipe, image.recipe_version),
        format!("pipeline   {}", image.pipeline.as_deref().unwrap_or("-")),
        format!("parent     {}", image.parent.as_deref().unwrap_or("-")),
    ];
    lines.push(match (&image.build_id, build) {
        (None, _) => "build      - (bootstrapped)".to_owned(),
        (Some(id), Some(build)) => format!(
            "build      {id} (started {}{})",
            build.created_at,
            build.finished_at.map(|at| format!(", finished {at}")).unwrap_or_default()
        ),
        (Some(id), None) => format!("build      {id}"),
    });
    lines.push(format!("created    {}", image.created_at));
    let built_by = evidence.as_ref().and_then(|e| e.built_by.as_ref());
    lines.push(match built_by {
        Some(built_by) => format!("built by   {built_by}"),
        None => "built by   (not recorded)".to_owned(),
    });
    if image.build_id.is_some() {
        lines.push(format!("components {}", components_text(components)));
        match evidence.as_ref().and_then(|e| e.build.as_ref()) {
            Some(build) => lines.extend(checks_lines(
                &build.checks.steps,
                build.checks.test_stage_skipped.as_deref(),
            )),
            None => lines.push("checks     (not recorded)".to_owned()),
        }
    }
    lines
}

/// One line of an image's package manifest (`dpkg-query` output, in the
/// evidence crate's `DPKG_QUERY_FORMAT` columns).
struct PackageRow<'a> {
    name: &'a str,
    version: &'a str,
    architecture: &'a str,
    source_name: &'a str,
    source_version: &'a str,
    /// dpkg's `db:Status-Abbrev` (`ii` installed, `rc` removed with its
    /// configuration files left, ...).
    status: &'a str,
}

impl PackageRow<'_> {
    fn json(&self) -> Value {
        json!({
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "source_name": self.source_name,
            "source_version": self.source_version,
            "status": self.status,
        })
    }

    fn cells(&self) -> Vec<String> {
        [
            self.name,
            self.version,
            self.architecture,
            self.source_name,
            self.source_version,
            self.status,
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// The lines of a stored manifest, in its order.
fn package_rows(manifest: &str) -> Vec<PackageRow<'_>> {
    manifest
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, version, architecture, source_name, source_version, status] = fields[..]
            else {
                return None;
            };
            Some(PackageRow {
                name,
                version,
                architecture,
                source_name,
                source_version,
                status: status.trim_end(),
            })
        })
        .collect()
}

/// The CVE fixes a downgrade undoes: what the newer versions fixed, from
/// the evidence of the same two images read the other way round.
struct LostFixes {
    by_package: std::collections::BTreeMap<String, Vec<String>>,
    /// Every one, sorted.
    all: Vec<String>,
}

impl LostFixes {
    fn of(reverse: &ImageEvidence) -> LostFixes {
        let by_package: std::collections::BTreeMap<String, Vec<String>> = reverse
            .upgraded
            .iter()
            .map(|u| (u.name.clone(), u.cves.iter().map(ToString::to_string).collect()))
            .collect();
        let mut all: Vec<String> = by_package.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        LostFixes { by_package, all }
    }
}

/// The text form of an image's evidence: a summary line (downgrades too, so
/// a version that went back is never hidden, and how many upgrades are
/// security updates), the CVEs (and, for a diff to an older image, the
/// fixes it loses), then a table each of upgraded and downgraded packages,
/// and the packages added and removed.
fn evidence_lines(evidence: &ImageEvidence, lost: Option<&LostFixes>) -> Vec<String> {
    let security = evidence.upgraded.iter().filter(|u| u.security == Some(true)).count();
    let unknown = evidence.upgraded.iter().filter(|u| u.security.is_none()).count();
    let upgraded = match (evidence.upgraded.len(), unknown) {
        (0, _) => "0 upgraded".to_owned(),
        (count, 0) => format!("{count} upgraded ({security} security)"),
        (count, unknown) => format!("{count} upgraded ({security} security, {unknown} unknown)"),
    };
    let mut lines = vec![format!(
        "packages   {} installed; {upgraded}, {} downgraded, {} added, {} removed",
        evidence.package_count,
        evidence.downgraded.len(),
        evidence.added.len(),
        evidence.removed.len()
    )];
    lines.push(format!(
        "cves       {} fixed{}",
        evidence.cves.len(),
        if evidence.cves.is_empty() {
            String::new()
        } else {
            format!(": {}", evidence.cves.join(" "))
        }
    ));
    if let Some(lost) = lost {
        lines.push(format!(
            "cves lost  {} fixed in the newer versions the downgrades undo{}",
            lost.all.len(),
            if lost.all.is_empty() { String::new() } else { format!(": {}", lost.all.join(" ")) }
        ));
    }
    for note in &evidence.notes {
        lines.push(format!("note       {note}"));
    }
    if !evidence.upgraded.is_empty() {
        let rows: Vec<Vec<String>> = evidence
            .upgraded
            .iter()
            .map(|u| {
                let cves = if !u.changelog_available {
                    "(no changelog)".to_owned()
                } else {
                    u.cves.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ")
                };
                let security = match u.security {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "unknown",
                };
                vec![u.name.clone(), u.from.to_string(), u.to.to_string(), security.into(), cves]
            })
            .collect();
        lines.extend(render::table_lines(
            &["UPGRADED", "FROM", "TO", "SECURITY", "CVES FIXED"],
            &rows,
        ));
    }
    if !evidence.downgraded.is_empty() {
        let rows: Vec<Vec<String>> = evidence
            .downgraded
            .iter()
            .map(|d| {
                let mut row = vec![d.name.clone(), d.from.clone(), d.to.clone()];
                if let Some(lost) = lost {
                    row.push(lost.by_package.get(&d.name).map(|c| c.join(" ")).unwrap_or_default());
                }
                row
            })
            .collect();
        let header: &[&str] = if lost.is_some() {
            &["DOWNGRADED", "FROM", "TO", "CVES LOST"]
        } else {
            &["DOWNGRADED", "FROM", "TO"]
        };
        lines.extend(render::table_lines(header, &rows));
    }
    for added in &evidence.added {
        lines.push(format!("added      {} {}", added.name, added.version));
    }
    for removed in &evidence.removed {
        lines.push(format!("removed    {} {}", removed.name, removed.version));
    }
    lines
}

fn image_json(image: &ImageRow) -> Value {
    json!({
        "version": image.version,
        "recipe": image.recipe,
        "recipeVersion": image.recipe_version,
        "buildNumber": image.build_number,
        "buildId": image.build_id,
        "pipeline": image.pipeline,
        "engineImageId": image.engine_image_id,
        "engineReference": image.engine_reference,
        "parent": image.parent,
        "parentEngineImageId": image.parent_engine_image_id,
        "createdAt": image.created_at.to_string(),
        "evidence": serde_json::from_str::<Value>(&image.evidence).unwrap_or(Value::Null),
    })
}

/// A build's row with what its other records say: the parent it resolved
/// (its `parent` event), the component versions it ran, its events, its
/// `detailedoutput.json`, and whether it published its image.
struct BuildRecords {
    build: BuildRow,
    /// The parent as resolved when the build started (an image version, or
    /// the engine reference the recipe gave); `None` for a build made before
    /// autopatch recorded it, unless its image names it.
    parent: Option<String>,
    components: Vec<BuildComponentRow>,
    events: Vec<EventRow>,
    detailed: Option<Value>,
    published: bool,
}

impl BuildRecords {
    fn read(ctx: &Context, build: BuildRow) -> Result<BuildRecords, CliError> {
        let store = &ctx.store;
        let events = store.events(&format!("build/{}", build.id)).map_err(CliError::from_error)?;
        let image = store
            .image(&build.image_version())
            .map_err(CliError::from_error)?
            .filter(|image| image.build_id.as_deref() == Some(build.id.as_str()));
        let parent = events
            .iter()
            .find(|event| event.kind == PARENT_EVENT)
            .map(|event| event.detail.clone())
            .or_else(|| image.as_ref().and_then(|image| image.parent.clone()));
        let components = store.build_components(&build.id).map_err(CliError::from_error)?;
        let detailed = fs_err::read_to_string(Path::new(&build.artifact_dir).join(DETAILED_OUTPUT))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        Ok(BuildRecords { build, parent, components, events, detailed, published: image.is_some() })
    }

    /// The resolved parent, else the reference the recipe gave.
    fn parent_or_reference(&self) -> &str {
        self.parent.as_deref().unwrap_or(&self.build.parent_image)
    }

    /// `build list`'s entry (and `pipeline start`'s): camelCase, as the
    /// other command answers.
    fn json(&self) -> Value {
        let build = &self.build;
        json!({
            "id": build.id,
            "imageVersion": build.image_version(),
            "published": self.published,
            "pipeline": build.pipeline,
            "recipe": build.recipe,
            "recipeVersion": build.recipe_version,
            "state": build.state.as_str(),
            "reason": build.reason,
            "parentImage": build.parent_image,
            "parent": self.parent,
            "artifactDir": build.artifact_dir,
            "createdAt": build.created_at.to_string(),
            "finishedAt": build.finished_at.map(|t| t.to_string()),
        })
    }

    /// `build show -o json`: [`BuildRecords::json`] with the component
    /// versions, the checks, who ran it and the events.
    fn show_json(&self) -> Value {
        let mut value = self.json();
        value["parentEngineImageId"] =
            self.detailed.as_ref().map_or(Value::Null, |d| d["parent_engine_image_id"].clone());
        value["components"] = components_json(&self.components);
        value["checks"] = Value::Array(
            self.checks()
                .iter()
                .map(|check| serde_json::to_value(check).unwrap_or_default())
                .collect(),
        );
        value["builtBy"] = self.detailed.as_ref().map_or(Value::Null, |d| d["built_by"].clone());
        value["events"] = Value::Array(
            self.events
                .iter()
                .map(|e| json!({"at": e.at.to_string(), "kind": e.kind, "detail": e.detail}))
                .collect(),
        );
        value
    }

    /// The steps of the `validate` and `test` phases the build ran, from its
    /// detailed output.
    fn checks(&self) -> Vec<CheckStep> {
        let Some(phases) = self.detailed.as_ref().and_then(|d| d["phases"].as_array()) else {
            return Vec::new();
        };
        let text = |value: &Value| value.as_str().unwrap_or("?").to_owned();
        phases
            .iter()
            .filter(|phase| matches!(phase["phase"].as_str(), Some("validate" | "test")))
            .flat_map(|phase| {
                phase["steps"].as_array().into_iter().flatten().map(move |step| CheckStep {
                    phase: text(&phase["phase"]),
                    component: text(&phase["component"]),
                    step: text(&step["name"]),
                    status: text(&step["status"]),
                })
            })
            .collect()
    }

    fn built_by(&self) -> Option<BuiltBy> {
        let value = self.detailed.as_ref()?.get("built_by")?.clone();
        serde_json::from_value(value).ok()
    }

    /// `build show`'s text.
    fn show_lines(&self) -> Vec<String> {
        let build = &self.build;
        let mut lines = vec![format!("build      {}", build.id)];
        // A version is an image only once published: a failed build's never is.
        lines.push(if self.published {
            format!("image      {}", build.image_version())
        } else if build.state.is_terminal() {
            format!(
                "version    {} (not published: the build ended {})",
                build.image_version(),
                build.state
            )
        } else {
            format!("version    {} (not published yet)", build.image_version())
        });
        lines.push(format!("pipeline   {}", build.pipeline.as_deref().unwrap_or("-")));
        lines.push(format!("recipe     {} {}", build.recipe, build.recipe_version));
        lines.push(match &self.parent {
            Some(parent) if *parent != build.parent_image => {
                format!("parent     {parent} (the recipe names {})", build.parent_image)
            }
            Some(parent) => format!("parent     {parent}"),
            None => format!("parent     {} (not resolved in the records)", build.parent_image),
        });
        lines.push(format!("state      {}", build.state));
        if let Some(reason) = &build.reason {
            lines.extend(labelled("reason", reason.lines()));
        }
        lines.push(format!("started    {}", build.created_at));
        if let Some(finished) = build.finished_at {
            lines.push(format!("finished   {finished}"));
        }
        if let Some(built_by) = self.built_by() {
            lines.push(format!("built by   {built_by}"));
        }
        lines.push(format!("components {}", components_text(&self.components)));
        lines.extend(checks_lines(&self.checks(), None));
        lines.push(format!("artifacts  {}", build.artifact_dir));
        for event in &self.events {
            if event.kind == "state" {
                lines.push(format!("  {}  {}", event.at, event.detail));
            } else {
                lines.push(format!("  {}  {}: {}", event.at, event.kind, event.detail));
            }
        }
        lines
    }
}

/// The name of a build's detailed output in its artifact folder.
const DETAILED_OUTPUT: &str = "detailedoutput.json";

/// `label` and the first of `lines` in the key column, the rest indented
/// under it.
fn labelled<'a>(label: &str, lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    lines
        .enumerate()
        .map(|(index, line)| {
            let label = if index == 0 { label } else { "" };
            format!("{label:<10} {line}").trim_end().to_owned()
        })
        .collect()
}

/// A reason in one table cell: its first line, with ` …` when more follow.
fn first_line(reason: &str) -> String {
    let mut lines = reason.lines();
    let first = lines.next().unwrap_or_default().trim_end();
    if lines.any(|line| !line.trim().is_empty()) {
        format!("{first} …")
    } else {
        first.to_owned()
    }
}

/// `[{"name", "version", "build"}]`, as the evidence names components.
fn components_json(components: &[BuildComponentRow]) -> Value {
    Value::Array(
        components
            .iter()
            .map(|c| json!({"name": c.name, "version": c.version, "build": c.build_number}))
            .collect(),
    )
}

/// `update-os 1.0.1/1, webapp-test 1.0.0/1`.
fn components_text(components: &[BuildComponentRow]) -> String {
    if components.is_empty() {
        return "(not recorded)".to_owned();
    }
    components
        .iter()
        .map(|c| format!("{} {}/{}", c.name, c.version, c.build_number))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The checks that ran, counted by status, then one line each; and why
/// the test stage did not run, when that is known.
fn checks_lines(checks: &[CheckStep], test_stage_skipped: Option<&str>) -> Vec<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for check in checks {
        match counts.iter_mut().find(|(status, _)| *status == check.status) {
            Some((_, count)) => *count += 1,
            None => counts.push((&check.status, 1)),
        }
    }
    let counted: Vec<String> =
        counts.iter().map(|(status, count)| format!("{count} {status}")).collect();
    let mut lines = vec![if checks.is_empty() {
        "checks     none ran".to_owned()
    } else {
        format!("checks     {} ran: {}", checks.len(), counted.join(", "))
    }];
    for check in checks {
        lines.push(format!(
            "           {} {} {}: {}",
            check.phase, check.component, check.step, check.status
        ));
    }
    if let Some(why) = test_stage_skipped {
        lines.push(format!("           test stage skipped: {why}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_exits_by_how_its_build_ended() {
        let cases = [
            (ImageState::Available, None, 0),
            (ImageState::Failed, None, 1),
            (ImageState::Cancelled, None, 130),
            (ImageState::Cancelled, Some(15), 143),
            (ImageState::Cancelled, Some(1), 129),
        ];
        for (state, signal, code) in cases {
            assert_eq!(start_exit_code(state, signal), code, "{state} after {signal:?}");
        }
    }

    #[test]
    #[should_panic(expected = "reports a build only once it has ended")]
    fn a_start_never_reports_a_build_still_running_as_a_success() {
        start_exit_code(ImageState::Building, None);
    }

    #[test]
    fn downgrades_show_in_the_summary_and_their_own_table() {
        let evidence: ImageEvidence = serde_json::from_value(json!({
            "image": "web/1.0.0/2", "parent": "web/1.0.0/1", "package_count": 90,
            "upgraded": [], "added": [], "removed": [], "cves": [],
            "downgraded": [{"name": "libc6", "from": "2.36-9+deb12u4", "to": "2.36-9"}],
            "changelogs_available": true, "notes": [],
        }))
        .unwrap();
        let lines = evidence_lines(&evidence, None);
        assert_eq!(
            lines[0],
            "packages   90 installed; 0 upgraded, 1 downgraded, 0 added, 0 removed"
        );
        assert!(lines.contains(&"DOWNGRADED  FROM            TO".to_owned()), "{lines:#?}");
        assert!(lines.contains(&"libc6       2.36-9+deb12u4  2.36-9".to_owned()), "{lines:#?}");
    }

    #[test]
    fn upgrades_are_counted_and_marked_as_security_updates() {
        let upgrade = |name: &str, security: Value, cves: Value| {
            json!({"name": name, "from": "1", "to": "2", "source_name": name,
                   "security": security, "cves": cves, "changelog_available": true})
        };
        let evidence: ImageEvidence = serde_json::from_value(json!({
            "image": "web/1.0.0/2", "parent": "web/1.0.0/1", "package_count": 90,
            "upgraded": [
                upgrade("liblzma5", json!(true), json!([])),
                upgrade("libc6", json!(true), json!(["CVE-2025-4802"])),
                upgrade("base-files", json!(false), json!([])),
                upgrade("local", Value::Null, json!([])),
            ],
            "downgraded": [], "added": [], "removed": [], "cves": ["CVE-2025-4802"],
            "changelogs_available": true, "notes": [],
        }))
        .unwrap();
        let lines = evidence_lines(&evidence, None);
        assert_eq!(
            lines[0],
            "packages   90 installed; 4 upgraded (2 security, 1 unknown), 0 downgraded, 0 added, \
             0 removed"
        );
        let table: Vec<&str> = lines.iter().skip(2).map(String::as_str).collect();
        assert_eq!(
            table,
            [
                "UPGRADED    FROM  TO  SECURITY  CVES FIXED",
                "liblzma5    1     2   yes",
                "libc6       1     2   yes       CVE-2025-4802",
                "base-files  1     2   no",
                "local       1     2   unknown",
            ]
        );
    }

    #[test]
    fn a_diff_to_older_versions_lists_the_fixes_it_loses() {
        let evidence: ImageEvidence = serde_json::from_value(json!({
            "image": "web/1.0.0/1", "parent": "web/1.0.0/2", "package_count": 90,
            "upgraded": [], "added": [], "removed": [], "cves": [],
            "downgraded": [
                {"name": "libc6", "from": "2.36-9+deb12u10", "to": "2.36-9+deb12u4"},
                {"name": "tzdata", "from": "2026f-0+deb12u1", "to": "2026b-0+deb12u1"},
            ],
            "changelogs_available": true, "notes": [],
        }))
        .unwrap();
        let lost = LostFixes {
            by_package: [
                ("libc6".to_owned(), vec!["CVE-2025-4802".to_owned(), "CVE-2025-8058".to_owned()]),
                ("tzdata".to_owned(), Vec::new()),
            ]
            .into(),
            all: vec!["CVE-2025-4802".to_owned(), "CVE-2025-8058".to_owned()],
        };
        let lines = evidence_lines(&evidence, Some(&lost));
        assert_eq!(lines[1], "cves       0 fixed");
        assert_eq!(
            lines[2],
            "cves lost  2 fixed in the newer versions the downgrades undo: CVE-2025-4802 \
             CVE-2025-8058"
        );
        assert_eq!(lines[3], "DOWNGRADED  FROM             TO               CVES LOST");
        assert_eq!(
            lines[4],
            "libc6       2.36-9+deb12u10  2.36-9+deb12u4   CVE-2025-4802 CVE-2025-8058"
        );
        assert_eq!(lines[5], "tzdata      2026f-0+deb12u1  2026b-0+deb12u1");
    }

    #[test]
    fn a_multi_line_reason_is_one_line_with_a_marker_in_a_table_and_indented_in_show() {
        let reason = "step Run of component c (test phase) failed: exit code 1; last output:\n\
                      auditor-visible failure\n";
        assert_eq!(
            first_line(reason),
            "step Run of component c (test phase) failed: exit code 1; last output: …"
        );
        assert_eq!(first_line("cancelled"), "cancelled");
        assert_eq!(first_line("one line\n\n"), "one line");
        assert_eq!(
            labelled("reason", reason.lines()),
            [
                "reason     step Run of component c (test phase) failed: exit code 1; last output:",
                "           auditor-visible failure",
            ]
        );
    }

    #[test]
    fn a_manifest_is_one_object_per_package_with_its_columns() {
        let manifest = "adduser\t3.134\tall\tadduser\t3.134\tii \n\
                        libssl3:amd64\t3.0.11-1~deb12u2\tamd64\topenssl\t3.0.11-1~deb12u2\tii \n\
                        procps\t2:4.0.2-3\tamd64\tprocps\t2:4.0.2-3\trc \n";
        let rows: Vec<Value> = package_rows(manifest).iter().map(PackageRow::json).collect();
        assert_eq!(
            Value::Array(rows),
            json!([
                {"name": "adduser", "version": "3.134", "architecture": "all",
                 "source_name": "adduser", "source_version": "3.134", "status": "ii"},
                {"name": "libssl3:amd64", "version": "3.0.11-1~deb12u2", "architecture": "amd64",
                 "source_name": "openssl", "source_version": "3.0.11-1~deb12u2", "status": "ii"},
                {"name": "procps", "version": "2:4.0.2-3", "architecture": "amd64",
                 "source_name": "procps", "source_version": "2:4.0.2-3", "status": "rc"},
            ])
        );
    }

    #[test]
    fn checks_are_counted_by_status_and_listed() {
        let check = |phase: &str, step: &str, status: &str| CheckStep {
            phase: phase.into(),
            component: "web".into(),
            step: step.into(),
            status: status.into(),
        };
        let checks = [
            check("validate", "Pending", "success"),
            check("test", "Index", "success"),
            check("test", "Details", "failed"),
        ];
        assert_eq!(
            checks_lines(&checks, None),
            [
                "checks     3 ran: 2 success, 1 failed",
                "           validate web Pending: success",
                "           test web Index: success",
                "           test web Details: failed",
            ]
        );
        assert_eq!(
            checks_lines(&[], Some("image tests are disabled")),
            ["checks     none ran", "           test stage skipped: image tests are disabled"]
        );
    }
}
