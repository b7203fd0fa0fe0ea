//! One function per subcommand: parse-free, they call the library crates and
//! hand results to [`crate::render`].

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use autopatch_engine::DockerEngine;
use autopatch_engine::{ContainerSpec, Engine};
use autopatch_imagebuilder::{
    BootstrapError, BootstrapRequest, BuildError, BuildEvent, BuildOutcome, Builder, ImageEvidence,
    NETWORK, Progress as _, Registered, Sources, StartOptions, StartOutcome, runner_gone,
};
use autopatch_model::ImageState;
use autopatch_store::{BuildRow, ImageRow, Store};
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
    let interrupt = Interrupt::listen(&cancel)?;
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
                let mut value = build_json(build);
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
            if json {
                render::json(&Value::Array(builds.iter().map(build_json).collect()));
            } else {
                let rows: Vec<Vec<String>> = builds
                    .iter()
                    .map(|b| {
                        vec![
                            b.id.clone(),
                            b.image_version(),
                            b.state.to_string(),
                            b.created_at.to_string(),
                            b.reason
                                .clone()
                                .unwrap_or_default()
                                .lines()
                                .next()
                                .unwrap_or("")
                                .to_owned(),
                        ]
                    })
                    .collect();
                render::table(&["BUILD", "IMAGE", "STATE", "STARTED", "REASON"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        BuildCommand::Show { id } => {
            let build = ctx.store.build(&id).map_err(CliError::from_error)?.ok_or_else(|| {
                CliError::new(format!("build {id} not found"))
                    .with_hint("list builds with `autopatch build list`")
            })?;
            let events = ctx.store.events(&format!("build/{id}")).map_err(CliError::from_error)?;
            if json {
                let mut value = build_json(&build);
                value["events"] = Value::Array(
                    events
                        .iter()
                        .map(
                            |e| json!({"at": e.at.to_string(), "kind": e.kind, "detail": e.detail}),
                        )
                        .collect(),
                );
                render::json(&value);
            } else {
                render::line(&format!("build      {}", build.id));
                render::line(&format!("image      {}", build.image_version()));
                render::line(&format!("pipeline   {}", build.pipeline.as_deref().unwrap_or("-")));
                render::line(&format!("parent     {}", build.parent_image));
                render::line(&format!("state      {}", build.state));
                if let Some(reason) = &build.reason {
                    render::line(&format!("reason     {reason}"));
                }
                render::line(&format!("artifacts  {}", build.artifact_dir));
                for event in events {
                    render::line(&format!("  {}  {}", event.at, event.detail));
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
            if json {
                let mut value = image_json(&row);
                if packages {
                    value["packages"] = Value::String(row.manifest.clone());
                }
                render::json(&value);
            } else {
                render::line(&format!("image      {}", row.version));
                render::line(&format!(
                    "engine     {} ({})",
                    row.engine_reference, row.engine_image_id
                ));
                render::line(&format!("parent     {}", row.parent.as_deref().unwrap_or("-")));
                render::line(&format!("build      {}", row.build_id.as_deref().unwrap_or("-")));
                render::line(&format!("created    {}", row.created_at));
                print_evidence_summary(&row);
                if packages {
                    render::line("packages:");
                    for line in row.manifest.lines() {
                        render::line(&format!("  {}", line.replace('\t', " ")));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Diff { from, to } => {
            let from = find_image(ctx, &from)?;
            let to = find_image(ctx, &to)?;
            let builder = ctx.builder().await?;
            let evidence = diff_images(&builder, &from, &to).await?;
            if json {
                render::json(&serde_json::to_value(&evidence).unwrap_or_default());
            } else {
                render::line(&format!("{} -> {}", from.version, to.version));
                print_evidence(&evidence);
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
        use tokio::signal::unix::{SignalKind, signal};
        let received = Arc::new(AtomicI32::new(0));
        for (number, name) in Interrupt::SIGNALS {
            let mut stream = signal(SignalKind::from_raw(number))
                .map_err(|error| CliError::new(format!("cannot handle {name}: {error}")))?;
            let received = Arc::clone(&received);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                if stream.recv().await.is_some() {
                    let _ =
                        received.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst);
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
        Some(evidence) => print_evidence(&evidence),
        None => render::line("evidence   (unreadable)"),
    }
}

fn print_evidence(evidence: &ImageEvidence) {
    for text in evidence_lines(evidence) {
        render::line(&text);
    }
}

/// The text form of an image's evidence: a summary line (downgrades too, so
/// a version that went back is never hidden), the CVEs, then a table each of
/// upgraded and downgraded packages, and the packages added and removed.
fn evidence_lines(evidence: &ImageEvidence) -> Vec<String> {
    let mut lines = vec![format!(
        "packages   {} installed; {} upgraded, {} downgraded, {} added, {} removed",
        evidence.package_count,
        evidence.upgraded.len(),
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
                vec![u.name.clone(), u.from.to_string(), u.to.to_string(), cves]
            })
            .collect();
        lines.extend(render::table_lines(&["UPGRADED", "FROM", "TO", "CVES FIXED"], &rows));
    }
    if !evidence.downgraded.is_empty() {
        let rows: Vec<Vec<String>> = evidence
            .downgraded
            .iter()
            .map(|d| vec![d.name.clone(), d.from.clone(), d.to.clone()])
            .collect();
        lines.extend(render::table_lines(&["DOWNGRADED", "FROM", "TO"], &rows));
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

fn build_json(build: &BuildRow) -> Value {
    json!({
        "id": build.id,
        "imageVersion": build.image_version(),
        "pipeline": build.pipeline,
        "recipe": build.recipe,
        "recipeVersion": build.recipe_version,
        "state": build.state.as_str(),
        "reason": build.reason,
        "parentImage": build.parent_image,
        "artifactDir": build.artifact_dir,
        "createdAt": build.created_at.to_string(),
        "finishedAt": build.finished_at.map(|t| t.to_string()),
    })
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
        let lines = evidence_lines(&evidence);
        assert_eq!(
            lines[0],
            "packages   90 installed; 0 upgraded, 1 downgraded, 0 added, 0 removed"
        );
        assert!(lines.contains(&"DOWNGRADED  FROM            TO".to_owned()), "{lines:#?}");
        assert!(lines.contains(&"libc6       2.36-9+deb12u4  2.36-9".to_owned()), "{lines:#?}");
    }
}
