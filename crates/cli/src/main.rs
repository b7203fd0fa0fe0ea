//! The `autopatch` command: argument parsing, then one call into the
//! library crates per subcommand. Data goes to stdout (text or `--output
//! json`), progress and errors to stderr.

mod commands;
mod context;
mod lifecycle;
mod render;
mod stack;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use autopatch_model::SemanticVersion;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keep a fleet of servers patched, with no downtime and with proof.
///
/// autopatch runs the AWS "autonomous patching" lab for real on one Linux
/// host: golden images are rebuilt with the latest OS patches by an image
/// pipeline (AWSTOE components, Image Builder recipes and pipelines), with
/// evidence of every package upgraded and every CVE fixed.
///
/// A first run, from the repository root:
///
///   autopatch image bootstrap                       # golden/1.0.0/1 from Debian bookworm
///   autopatch component create --file components/webapp.yml
///   autopatch component create --file components/webapp-test.yml
///   autopatch recipe create --file pipelines/webapp.recipe.yml
///   autopatch pipeline create --file pipelines/webapp.pipeline.yml
///   autopatch pipeline start webapp                 # → webapp/1.0.0/1
///   autopatch image show webapp/1.0.0/1
///
/// Then run it as stacks behind autopatch's load balancer (docs/daemon.md):
///
///   autopatch up                                    # the control plane, in the background
///   autopatch stack create pattern3-base --template templates/pattern3-base.yml
///   autopatch stack create pattern3-app --template templates/pattern3-app.yml \
///       --parameter BaselineVpcStack=pattern3-base --parameter AmazonMachineImage=webapp/1.0.0/1
///   autopatch stack outputs pattern3-app            # the load balancer's URL
#[derive(Debug, Parser)]
#[command(name = "autopatch", version, verbatim_doc_comment, max_term_width = 100)]
struct Cli {
    /// Where autopatch keeps its state (SQLite database, build artifacts);
    /// by default $XDG_STATE_HOME/autopatch, else ~/.local/state/autopatch.
    /// Commands that only read (list, show, diff) refuse a directory with no
    /// state instead of making one.
    #[arg(
        long,
        global = true,
        env = "AUTOPATCH_STATE_DIR",
        value_name = "DIR",
        default_value_os_t = context::default_state_dir()
    )]
    state_dir: PathBuf,

    /// Output format of the data a command prints.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Images: bootstrap golden images, list and show them, diff, check for updates.
    #[command(subcommand)]
    Image(ImageCommand),
    /// AWSTOE component documents (CreateComponent).
    #[command(subcommand)]
    Component(ComponentCommand),
    /// Image recipes: a parent image and components (CreateImageRecipe).
    #[command(subcommand)]
    Recipe(RecipeCommand),
    /// Image pipelines: a recipe, test settings, a start condition (CreateImagePipeline).
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Builds: the executions of pipelines.
    #[command(subcommand)]
    Build(BuildCommand),
    /// Run the control plane in the foreground (what `up` starts in the background)
    ///
    /// The control plane owns the stacks: their load balancers listen in it and
    /// their Auto Scaling groups are kept at capacity by it. It serves an HTTP API
    /// with AWS's operation names and shapes on <state dir>/autopatch.sock (see
    /// docs/daemon.md); the `stack`, `targets` and `fleet` commands are its clients.
    /// One daemon per state directory. It stops on SIGTERM, SIGINT or `autopatch
    /// down`; log lines (logfmt) go to stderr.
    ///
    ///   autopatch serve                              # until Ctrl-C
    ///   autopatch serve --listen 127.0.0.1:7070      # also on loopback TCP
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Start the control plane in the background, unless it is running already
    ///
    /// Starts `autopatch serve` detached, with its log appended to
    /// <state dir>/daemon.log, and waits (up to 30 s) until it answers. Exits 0
    /// when a daemon is running, 1 (with the log's last lines) when it did not start.
    ///
    ///   autopatch up
    ///   autopatch up --listener-ports template      # load balancers on the templates' own ports
    #[command(verbatim_doc_comment)]
    Up(ServeArgs),
    /// Stop the control plane; instances keep running
    ///
    /// Load balancer listeners close and fleets are no longer watched, but the
    /// instances (containers) keep running: the next `autopatch up` re-adopts them
    /// and reopens the listeners. Exits 0 when no daemon runs afterwards.
    #[command(verbatim_doc_comment)]
    Down,
    /// CloudFormation stacks: create, update, delete, and follow them (needs `autopatch up`).
    #[command(subcommand)]
    Stack(StackCommand),
    /// Target health of a load balancer's target group (DescribeTargetHealth)
    ///
    ///   autopatch stack resources pattern3-app       # the target group's ARN is its physical id
    ///   autopatch targets --target-group arn:aws:elasticloadbalancing:local:000000000000:targetgroup/...
    #[command(verbatim_doc_comment)]
    Targets {
        /// The target group's ARN (see `autopatch stack resources STACK`).
        #[arg(long, value_name = "ARN")]
        target_group: String,
    },
    /// Auto Scaling groups and their instances (DescribeAutoScalingGroups)
    ///
    ///   autopatch fleet                              # every group
    ///   autopatch fleet --group pattern3-app-Pattern3ASG-1A2B3C
    #[command(verbatim_doc_comment)]
    Fleet {
        /// Only this group (repeatable); by default every group.
        #[arg(long, value_name = "NAME")]
        group: Vec<String>,
    },
    Watch(watch::WatchArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Which local port each load balancer listener gets: `free` (the default: a
    /// free port on 127.0.0.1, kept for the stack's life) or `template` (the
    /// template's own port on 127.0.0.1; port 80 needs privileges).
    #[arg(long, value_enum)]
    listener_ports: Option<ListenerPortsArg>,
    /// Also serve the API on this TCP address; loopback addresses only (the API
    /// has no authentication).
    #[arg(long, value_name = "ADDRESS:PORT", value_parser = parse_listen)]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ListenerPortsArg {
    Free,
    Template,
}

/// A semantic version x.y.z (`--version`), by the rule documents follow.
fn parse_version(text: &str) -> Result<SemanticVersion, String> {
    text.parse::<SemanticVersion>().map_err(|error| error.reason.to_owned())
}

/// A component or pipeline name (`--name`, `pipeline start NAME`): the rule
/// the documents follow, letters, digits, `-` and `_`.
fn parse_name(text: &str) -> Result<String, String> {
    if autopatch_documents::is_name(text) {
        Ok(text.to_owned())
    } else {
        Err("expected a name made of letters, digits, `-` and `_`".to_owned())
    }
}

/// An image's name (`image bootstrap --name`): a name, lowercase as recipe
/// names are, since it names the image's engine repository.
fn parse_image_name(text: &str) -> Result<String, String> {
    if autopatch_documents::is_name(text) && !text.bytes().any(|byte| byte.is_ascii_uppercase()) {
        Ok(text.to_owned())
    } else {
        Err("expected lowercase letters, digits, `-` and `_` (it names the image's engine \
             repository)"
            .to_owned())
    }
}

/// A Debian release (`--suite`): a codename or suite name such as
/// `bookworm` or `stable`, one word of the sources line. The archive's
/// names are lowercase (`dists/bookworm`), and the mirror would answer 404
/// for `Bookworm` only after mmdebstrap has started.
fn parse_suite(text: &str) -> Result<String, String> {
    let valid = text.starts_with(|c: char| c.is_ascii_lowercase())
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
    if valid {
        Ok(text.to_owned())
    } else {
        Err("expected a Debian codename or suite in lowercase, like bookworm or stable".to_owned())
    }
}

/// A Debian mirror (`--mirror`): a URL apt can fetch from in mmdebstrap,
/// one word of the sources line: `http://`, `https://`, `file:/` (a local
/// archive) or `copy:/` (the same, copied; see mmdebstrap(1)). apt's `ftp`
/// method is disabled, and other schemes have no apt method at all.
fn parse_mirror(text: &str) -> Result<String, String> {
    let rest = ["http://", "https://", "file:/", "copy:/"]
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme));
    let valid = rest.is_some_and(|rest| !rest.is_empty() && rest != "/");
    if valid && !text.contains(char::is_whitespace) {
        Ok(text.to_owned())
    } else {
        Err("expected an http://, https://, file:/ or copy:/ URL without spaces, like \
             http://deb.debian.org/debian (apt's ftp method is disabled)"
            .to_owned())
    }
}

/// A package to include (`--include`): a Debian package name as policy
/// §5.6.7 has it: lowercase letters, digits, `+`, `-` and `.`, at least two
/// characters, the first a letter or digit.
fn parse_package(text: &str) -> Result<String, String> {
    let valid = text.len() >= 2
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if valid {
        Ok(text.to_owned())
    } else {
        Err("expected Debian package names separated by commas, like apache2,php: lowercase \
             letters, digits, `+`, `-` and `.`, at least two characters, starting with a letter \
             or digit"
            .to_owned())
    }
}

/// `--listen`: an IP address and a port, loopback only (the API has no
/// authentication); `localhost:PORT` means 127.0.0.1.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let out_of_range =
        |port: &str| format!("invalid port {port:?}: expected a number from 0 to 65535");
    let address = match text.parse::<SocketAddr>() {
        Ok(address) => address,
        Err(_) => match text.rsplit_once(':') {
            Some((host, port)) if host.eq_ignore_ascii_case("localhost") => {
                let port = port.parse::<u16>().map_err(|_| out_of_range(port))?;
                SocketAddr::from(([127, 0, 0, 1], port))
            }
            // An IP address with a number too large for a port.
            Some((host, port))
                if is_socket_host(host)
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && port.parse::<u16>().is_err() =>
            {
                return Err(out_of_range(port));
            }
            _ => {
                return Err("expected an IP address and a port, like 127.0.0.1:7070 or \
                     [::1]:7070 (host names other than localhost are not resolved)"
                    .to_owned());
            }
        },
    };
    if !address.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address: the API has no authentication, so it listens on \
             loopback only, like 127.0.0.1:7070",
            address.ip()
        ));
    }
    Ok(address)
}

/// Whether `host` is the address part of `ADDRESS:PORT`: an IPv4 address,
/// or an IPv6 address in brackets.
fn is_socket_host(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        Some(inner) => inner.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// `KEY=VALUE` of `--parameter`.
fn parse_parameter(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[derive(Debug, Subcommand)]
enum StackCommand {
    /// Create a stack from a template (CreateStack) and follow its events
    ///
    /// The whole template is checked first: nothing is created when it has a
    /// problem, and every problem is reported as `file:line:col: error: ...`.
    /// Then events are printed as they happen, oldest first, until the stack is
    /// CREATE_COMPLETE (exit 0) or failed (ROLLBACK_COMPLETE, CREATE_FAILED, ...:
    /// exit 1, with the reason). Ctrl-C stops following, not the create (exit
    /// 130); a daemon that stops meanwhile ends the following with exit 4: the
    /// create resumes when the daemon starts again.
    ///
    ///   autopatch stack create pattern3-base --template templates/pattern3-base.yml
    ///   autopatch stack create pattern3-app --template templates/pattern3-app.yml \
    ///       --parameter BaselineVpcStack=pattern3-base \
    ///       --parameter AmazonMachineImage=webapp/1.0.0/1
    ///   autopatch stack create pattern3-base --template templates/pattern3-base.yml --no-wait
    #[command(verbatim_doc_comment)]
    Create {
        /// The stack's name.
        name: String,
        /// The template (YAML or JSON), read by the daemon.
        #[arg(long, value_name = "FILE")]
        template: PathBuf,
        /// A template parameter's value (repeatable).
        #[arg(long = "parameter", value_name = "KEY=VALUE", value_parser = parse_parameter)]
        parameters: Vec<(String, String)>,
        /// Keep what was created if the create fails (no rollback).
        #[arg(long)]
        disable_rollback: bool,
        /// Return once the create has started; do not follow it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Update a stack (UpdateStack) and follow its events
    ///
    /// Parameters not given keep their previous values (AWS would reset them to
    /// the template's defaults). An image that does not exist is refused before
    /// anything starts. Exits 0 when the stack is UPDATE_COMPLETE or already
    /// current ("no updates to perform"; 3 with --fail-on-empty), 1 when the
    /// update failed and rolled back (UPDATE_ROLLBACK_COMPLETE, ...).
    ///
    ///   autopatch stack update pattern3-app --use-previous-template \
    ///       --parameter AmazonMachineImage=webapp/1.0.0/2
    ///   autopatch stack update pattern3-app --template templates/pattern3-app.yml \
    ///       --use-previous AmazonMachineImage
    #[command(verbatim_doc_comment)]
    #[command(group(clap::ArgGroup::new("source").required(true).args(["template", "use_previous_template"])))]
    Update {
        /// The stack's name.
        name: String,
        /// A new template.
        #[arg(long, value_name = "FILE")]
        template: Option<PathBuf>,
        /// Keep the stack's current template.
        #[arg(long)]
        use_previous_template: bool,
        /// A template parameter's new value (repeatable).
        #[arg(long = "parameter", value_name = "KEY=VALUE", value_parser = parse_parameter)]
        parameters: Vec<(String, String)>,
        /// Keep this parameter's previous value (repeatable; the default for
        /// parameters not named anyway).
        #[arg(long, value_name = "KEY")]
        use_previous: Vec<String>,
        /// Exit 3 instead of 0 when there is nothing to update.
        #[arg(long)]
        fail_on_empty: bool,
        /// Return once the update has started; do not follow it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Cancel a stack's update in progress (CancelUpdateStack) and follow the rollback
    ///
    /// Only while an update runs (UPDATE_IN_PROGRESS, e.g. while the new
    /// instances of a blue/green update wait for their signals and health
    /// checks). In any other status, its cleanup included, it is refused and
    /// nothing changes; once an update has ended, undo it with another update.
    /// The update stops waiting at once; what it created is deleted and the
    /// resources it replaced keep serving. Exits 0 when the stack is
    /// UPDATE_ROLLBACK_COMPLETE, 1 otherwise.
    ///
    ///   autopatch stack update pattern3-app --use-previous-template \
    ///       --parameter AmazonMachineImage=webapp/1.0.0/2 --no-wait
    ///   autopatch stack cancel-update pattern3-app
    #[command(verbatim_doc_comment)]
    CancelUpdate {
        /// The stack's name.
        name: String,
        /// Return once the cancel is recorded; do not follow the rollback.
        #[arg(long)]
        no_wait: bool,
    },
    /// Roll back again a stack whose update rollback failed (ContinueUpdateRollback)
    ///
    /// A failed update rolls back by itself; when that rollback fails too (the
    /// engine stopped answering, an image went missing, ...) the stack is left
    /// UPDATE_ROLLBACK_FAILED, and can then be neither updated nor rolled back
    /// by anything else. Find why with `autopatch stack events NAME` (the
    /// resources the rollback failed are UPDATE_FAILED in `autopatch stack
    /// resources NAME`), fix the cause, then run this: the rollback starts
    /// again from where it stopped (UPDATE_ROLLBACK_IN_PROGRESS) and its
    /// events are followed until it ends. Exits 0 when the stack is
    /// UPDATE_ROLLBACK_COMPLETE (its previous template and parameters are
    /// current again and it takes updates), 1 when it failed again or the
    /// request was refused (any status but UPDATE_ROLLBACK_FAILED).
    ///
    /// A resource that cannot be rolled back can be skipped with
    /// --resources-to-skip (ResourcesToSkip). Only resources that are
    /// UPDATE_FAILED because the rollback failed them can be skipped: the one
    /// whose UPDATE_FAILED event comes just before the stack's
    /// UPDATE_ROLLBACK_FAILED in `autopatch stack events NAME`, not one the
    /// update failed that the rollback never reached (the new Auto Scaling
    /// group of a blue/green update, say); anything else is refused and
    /// nothing changes. A skipped resource is marked UPDATE_COMPLETE and
    /// recorded with the previous template's properties, but the resource
    /// itself is left as it is: until you fix it by hand or a later update
    /// changes it, it may not be what the stack says. Skip as few as you can.
    /// When the rollback cannot be finished, `autopatch stack delete NAME`
    /// deletes the stack and everything it made instead.
    ///
    ///   autopatch stack continue-update-rollback pattern3-app
    ///   autopatch stack events pattern3-app    # which resource's failure ended the rollback
    ///   autopatch stack continue-update-rollback pattern3-app \
    ///       --resources-to-skip LOGICAL_ID     # that resource, and only it
    ///   autopatch stack delete pattern3-app    # the way out when it cannot be rolled back
    #[command(verbatim_doc_comment)]
    ContinueUpdateRollback {
        /// The stack's name.
        name: String,
        /// Logical ids of resources whose rollback is skipped (space or comma
        /// separated, repeatable; each must be UPDATE_FAILED because the
        /// rollback failed it).
        #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "LOGICAL_ID")]
        resources_to_skip: Vec<String>,
        /// Return once the rollback has started again; do not follow it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete a stack (DeleteStack) and follow until it is DELETE_COMPLETE
    ///
    /// Refused while another operation is in progress on the stack (a create,
    /// an update or a rollback: wait for it to end, or stop an update with
    /// `autopatch stack cancel-update NAME`) and while another stack imports
    /// one of its exports; nothing changes then. Works from any other status,
    /// UPDATE_ROLLBACK_FAILED and DELETE_FAILED included; a delete already in
    /// progress is followed. Deleting a stack that does not exist succeeds.
    /// Exits 0 when the stack is DELETE_COMPLETE, 1 otherwise (DELETE_FAILED).
    #[command(verbatim_doc_comment)]
    Delete {
        /// The stack's name.
        name: String,
        /// Return once the delete has started; do not follow it.
        #[arg(long)]
        no_wait: bool,
        /// Keep these resources (logical ids) instead of deleting them; only for
        /// a stack in DELETE_FAILED (RetainResources).
        #[arg(long, value_delimiter = ',', value_name = "LOGICAL_ID")]
        retain_resources: Vec<String>,
    },
    /// Show a stack: status, reason, parameters, outputs (DescribeStacks).
    Describe {
        /// The stack's name.
        name: String,
    },
    /// A stack's events, oldest first (DescribeStackEvents; JSON keeps AWS's newest-first order).
    Events {
        /// The stack's name.
        name: String,
    },
    /// A stack's resources and their physical ids (DescribeStackResources).
    Resources {
        /// The stack's name.
        name: String,
    },
    /// A stack's outputs: `KEY  VALUE  [export NAME]`, one per line.
    Outputs {
        /// The stack's name.
        name: String,
    },
    /// List stacks (ListStacks)
    ///
    /// One line per stack: its name, status, when it was created and last
    /// updated, and the first line of its status reason. Deleted stacks
    /// (DELETE_COMPLETE) are left out unless --all is given. Needs `autopatch up`.
    ///
    ///   autopatch stack list
    ///   autopatch stack list --all                   # deleted stacks too
    #[command(verbatim_doc_comment)]
    List {
        /// Also list deleted stacks (DELETE_COMPLETE).
        #[arg(long)]
        all: bool,
    },
    /// List the values stacks export for others to import (ListExports).
    Exports,
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Build a golden image from Debian packages with mmdebstrap and register it
    ///
    /// The release's main archive only: the point release, none of the security
    /// updates since (a real, unpatched image). Temporary files go to <state
    /// dir>/work. Ctrl-C, SIGTERM or SIGHUP stop mmdebstrap, remove its files and
    /// make no image; the exit code is then 130, 143 or 129. What a bootstrap that
    /// was killed left there, and an image it had imported but not registered, is
    /// removed by the next one, once none of its processes runs (a directory
    /// something is still mounted under is reported).
    /// When mmdebstrap fails, the error shows the last lines of its output.
    ///
    ///   autopatch image bootstrap                    # golden/1.0.0/N from bookworm
    ///   autopatch image bootstrap --name golden-web --include apache2,php
    #[command(verbatim_doc_comment)]
    Bootstrap(BootstrapArgs),
    /// List registered images, newest first
    ///
    /// One line per image: its version (`name/x.y.z/N`), its parent, how many
    /// packages it upgraded and CVEs it fixed, and when it was made; `-o json`
    /// gives each image whole, with its evidence.
    ///
    ///   autopatch image list
    ///   autopatch -o json image list
    #[command(verbatim_doc_comment)]
    List,
    /// Show an image: identity, parent, packages upgraded, CVEs fixed.
    Show {
        /// An image version (`name/x.y.z/N`), or `name` / `name/x.y.z` for the latest build.
        image: String,
        /// Also list every installed package.
        #[arg(long)]
        packages: bool,
    },
    /// Compare two images' packages: upgraded (with the CVEs each upgrade
    /// fixes, read from the newer image's changelogs), added, removed.
    Diff {
        /// The older image.
        from: String,
        /// The newer image.
        to: String,
    },
    /// List the updates pending for an image, without changing it.
    CheckUpdates {
        /// An autopatch image or any engine image reference.
        image: String,
        /// Use only the package sources configured in the image (by default
        /// Debian images also get their release's -security and -updates archives).
        #[arg(long)]
        image_sources_only: bool,
    },
}

#[derive(Debug, Args)]
struct BootstrapArgs {
    /// Debian release codename or suite, lowercase.
    #[arg(long, default_value = "bookworm", value_parser = parse_suite)]
    suite: String,
    /// Debian mirror: an http://, https://, file:/ or copy:/ URL.
    #[arg(long, default_value = "http://deb.debian.org/debian", value_parser = parse_mirror)]
    mirror: String,
    /// Image name (the first part of its version `name/x.y.z/N`): lowercase
    /// letters, digits, `-` and `_`.
    #[arg(long, default_value = "golden", value_parser = parse_image_name)]
    name: String,
    /// Image semantic version x.y.z.
    #[arg(long, default_value = "1.0.0", value_parser = parse_version)]
    version: SemanticVersion,
    /// Extra packages to include, comma separated (Debian package names).
    #[arg(long, value_delimiter = ',', value_parser = parse_package)]
    include: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum ComponentCommand {
    /// Register a component document (AWSTOE, schemaVersion 1.0)
    ///
    /// Versions are immutable: registering the same text again changes nothing,
    /// other text under a registered version is refused (change the document,
    /// bump the version).
    ///
    ///   autopatch component create --file components/update-os.yml
    ///   autopatch component create --file my-step.yml --name my-step --version 1.1.0
    #[command(verbatim_doc_comment)]
    Create {
        /// The component document: AWSTOE YAML, schemaVersion 1.0 (e.g.
        /// components/update-os.yml).
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
        /// The name to register it under (letters, digits, `-` and `_`);
        /// defaults to the document's `name`.
        #[arg(long, value_parser = parse_name)]
        name: Option<String>,
        /// Semantic version x.y.z.
        #[arg(long, default_value = "1.0.0", value_parser = parse_version)]
        version: SemanticVersion,
    },
    /// Check a component document without registering it
    ///
    /// Every problem is reported at once, as `file:line:col: error: ...` on
    /// stderr (exit 2); with `-o json`, stdout also gets them as a JSON object
    /// (`{"file", "valid": false, "problems": [{"file", "line", "column", "message"}],
    /// "error": {"message", "hint", "code"}}`).
    ///
    ///   autopatch component validate --file components/update-os.yml
    ///   autopatch -o json component validate --file my-step.yml
    #[command(verbatim_doc_comment)]
    Validate {
        /// The component document: AWSTOE YAML, schemaVersion 1.0 (e.g.
        /// components/update-os.yml).
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
        /// The name `component create` would register it under (checked as
        /// create checks it); defaults to the document's `name`.
        #[arg(long, value_parser = parse_name)]
        name: Option<String>,
        /// The version `component create` would register it as.
        #[arg(long, default_value = "1.0.0", value_parser = parse_version)]
        version: SemanticVersion,
    },
    /// List registered components
    ///
    /// One line per component version: its name, version and the file it was
    /// registered from.
    ///
    ///   autopatch component list
    ///   autopatch -o json component list
    #[command(verbatim_doc_comment)]
    List,
}

#[derive(Debug, Subcommand)]
enum RecipeCommand {
    /// Register an image recipe (CreateImageRecipe)
    ///
    /// Its components must be registered and its parent image must exist; every
    /// problem is reported at once. Versions are immutable, like components'.
    ///
    ///   autopatch recipe create --file pipelines/webapp.recipe.yml
    #[command(verbatim_doc_comment)]
    Create {
        /// The recipe: YAML shaped like a CreateImageRecipe request (e.g.
        /// pipelines/webapp.recipe.yml).
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
    },
    /// List registered recipes
    ///
    /// One line per recipe version: its name, semantic version and the file it
    /// was registered from.
    ///
    ///   autopatch recipe list
    ///   autopatch -o json recipe list
    #[command(verbatim_doc_comment)]
    List,
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Create or update a pipeline (CreateImagePipeline)
    ///
    /// Pipelines are mutable: the same name again replaces the document
    /// (`updated`), identical text changes nothing. Its recipe must be registered.
    ///
    ///   autopatch pipeline create --file pipelines/webapp.pipeline.yml
    #[command(verbatim_doc_comment)]
    Create {
        /// The pipeline: YAML shaped like a CreateImagePipeline request (e.g.
        /// pipelines/webapp.pipeline.yml).
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
    },
    /// List pipelines
    ///
    /// One line per pipeline: its name and the file it was last created or
    /// updated from (pipelines have no versions: VERSION is `-`).
    ///
    ///   autopatch pipeline list
    ///   autopatch -o json pipeline list
    #[command(verbatim_doc_comment)]
    List,
    /// Run a pipeline now (StartImagePipelineExecution), with live progress.
    /// Exits 0 when the image is AVAILABLE or nothing needed building, 1 when
    /// the build FAILED, 130 when it was cancelled (Ctrl-C or `build cancel`),
    /// 143 / 129 when SIGTERM / SIGHUP cancelled it, 141 when stdout closed.
    Start {
        /// The pipeline's name.
        #[arg(value_parser = parse_name)]
        name: String,
        /// Idempotency token: a retried start with the same token does not
        /// start a second build.
        #[arg(long)]
        client_token: Option<String>,
        /// Build even if the start condition ("only if updates are available") says no.
        #[arg(long)]
        force: bool,
        /// Print every step's output as it runs.
        #[arg(long, short)]
        verbose: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BuildCommand {
    /// List builds, newest first
    ///
    /// One line per build: its id, the image version it makes, its state
    /// (PENDING, BUILDING, TESTING, AVAILABLE, FAILED, CANCELLED), when it
    /// started, and the first line of why it failed. Builds whose process is
    /// gone are ended (FAILED) first, so none shows as running when it is not.
    ///
    ///   autopatch build list
    ///   autopatch -o json build list
    #[command(verbatim_doc_comment)]
    List,
    /// Show a build: state, reason, artifact folder, events.
    Show {
        /// The build's id (`b-...`, see `autopatch build list`).
        id: String,
    },
    /// Ask a running build to stop (CancelImageCreation); it ends CANCELLED.
    Cancel {
        /// The build's id (`b-...`, see `autopatch build list`).
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => refused(error),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            let error =
                render::CliError::new(format!("failed to start the async runtime: {error}"));
            return render::report_as(&error, cli.output == OutputFormat::Json);
        }
    };
    runtime.block_on(commands::run(cli))
}

/// Arguments the parser refused: clap's message and exit code (2), and with
/// `-o json` the error as JSON on stdout too, as every other error has it.
/// `--help` and `--version` are not errors.
fn refused(error: clap::Error) -> ! {
    if error.use_stderr() && json_requested(std::env::args_os().skip(1)) {
        let text = error.render().to_string();
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        let message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
        let mut refusal =
            render::CliError::new(message).with_code(u8::try_from(error.exit_code()).unwrap_or(2));
        if let Some(tip) = lines.find_map(|line| line.trim_start().strip_prefix("tip: ")) {
            refusal = refusal.with_hint(tip);
        }
        render::json(&render::error_json(&refusal));
    }
    error.exit()
}

/// Whether the arguments ask for JSON output (`-o json`, `--output json`,
/// `--output=json`, `-ojson`; the last one given counts), read without the
/// parser, which refused them.
fn json_requested(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<String> = args.map(|arg| arg.to_string_lossy().into_owned()).collect();
    let mut json = false;
    let mut args = args.iter().map(String::as_str);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        let value = match arg {
            "-o" | "--output" => args.next(),
            arg => arg
                .strip_prefix("--output=")
                .or_else(|| arg.strip_prefix("-o=").or_else(|| arg.strip_prefix("-o"))),
        };
        if let Some(value) = value {
            json = value == "json";
        }
    }
    json
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every positional argument of every subcommand, with its help text or `None`.
    fn positionals(command: &clap::Command, path: &str, found: &mut Vec<(String, Option<String>)>) {
        for argument in command.get_positionals() {
            let help = argument.get_help().map(|help| help.to_string());
            found.push((format!("{path} <{}>", argument.get_id()), help));
        }
        for subcommand in command.get_subcommands() {
            positionals(subcommand, &format!("{path} {}", subcommand.get_name()), found);
        }
    }

    /// Every subcommand, with its path (`autopatch image list`).
    fn subcommands(command: &clap::Command, path: &str, found: &mut Vec<(String, clap::Command)>) {
        for subcommand in command.get_subcommands() {
            let path = format!("{path} {}", subcommand.get_name());
            found.push((path.clone(), subcommand.clone()));
            subcommands(subcommand, &path, found);
        }
    }

    fn all_subcommands() -> Vec<(String, clap::Command)> {
        let mut found = Vec::new();
        subcommands(&super::Cli::command(), "autopatch", &mut found);
        found
    }

    #[test]
    fn every_list_command_says_what_it_lists_with_an_example() {
        let lists: Vec<(String, clap::Command)> = all_subcommands()
            .into_iter()
            .filter(|(_, command)| command.get_name() == "list")
            .collect();
        assert!(lists.len() >= 6, "{:?}", lists.iter().map(|(path, _)| path).collect::<Vec<_>>());
        for (path, command) in lists {
            let about = command.get_about().map(|about| about.to_string()).unwrap_or_default();
            assert!(about.starts_with("List "), "{path}: {about:?}");
            let long = command.get_long_about().map(|about| about.to_string()).unwrap_or_default();
            assert!(
                long.contains("One line per "),
                "{path} does not say what a line shows: {long:?}"
            );
            assert!(long.contains(&format!("  {path}")), "{path} has no example: {long:?}");
        }
    }

    #[test]
    fn every_file_option_says_what_the_file_is_with_an_example() {
        let mut files = Vec::new();
        for (path, command) in all_subcommands() {
            for argument in
                command.get_arguments().filter(|argument| argument.get_long() == Some("file"))
            {
                let help = argument.get_help().map(|help| help.to_string()).unwrap_or_default();
                files.push(path.clone());
                assert!(help.starts_with("The "), "{path} --file: {help:?}");
                assert!(
                    help.contains("(e.g. ") && help.contains(".yml)"),
                    "{path} --file: {help:?}"
                );
            }
        }
        assert_eq!(files.len(), 4, "{files:?}");
    }

    #[test]
    fn json_output_is_found_in_arguments_the_parser_refused() {
        let requested =
            |args: &[&str]| super::json_requested(args.iter().map(std::ffi::OsString::from));
        assert!(requested(&["-o", "json", "image", "bootstrap", "--suite", "X"]));
        assert!(requested(&["image", "bootstrap", "--output=json"]));
        assert!(requested(&["--output", "json", "image"]));
        assert!(requested(&["-ojson", "image"]));
        assert!(!requested(&["image", "bootstrap", "--suite", "X"]));
        assert!(!requested(&["-o", "json", "-o", "text", "image"]));
        assert!(!requested(&["watch", "--", "-o", "json"]));
    }

    #[test]
    fn bootstrap_takes_what_mmdebstrap_and_apt_take() {
        for mirror in [
            "http://deb.debian.org/debian",
            "https://deb.debian.org/debian",
            "file:/srv/mirror",
            "file:///srv/mirror",
            "copy:///srv/mirror",
        ] {
            assert_eq!(super::parse_mirror(mirror).as_deref(), Ok(mirror));
        }
        for mirror in ["ftp://ftp.debian.org/debian", "file:", "file://", "HTTP://x", "x"] {
            assert!(super::parse_mirror(mirror).is_err(), "{mirror}");
        }
        for suite in ["bookworm", "stable", "bookworm-backports", "sid"] {
            assert_eq!(super::parse_suite(suite).as_deref(), Ok(suite));
        }
        for suite in ["Bookworm", "STABLE", "-x", "1x", "bookworm_x"] {
            assert!(super::parse_suite(suite).is_err(), "{suite}");
        }
        for package in ["apache2", "libstdc++6", "php8.2", "g++-12", "0ad"] {
            assert_eq!(super::parse_package(package).as_deref(), Ok(package));
        }
        for package in ["", "a", "Apache2", "-x", "+x", "a_b", "apache2=2.4", "a b"] {
            assert!(super::parse_package(package).is_err(), "{package}");
        }
    }

    #[test]
    fn listen_takes_a_loopback_address_or_localhost() {
        let parsed = |text: &str| super::parse_listen(text).map(|address| address.to_string());
        assert_eq!(parsed("127.0.0.1:7070"), Ok("127.0.0.1:7070".to_owned()));
        assert_eq!(parsed("[::1]:7070"), Ok("[::1]:7070".to_owned()));
        assert_eq!(parsed("localhost:7070"), Ok("127.0.0.1:7070".to_owned()));
        assert_eq!(parsed("LocalHost:0"), Ok("127.0.0.1:0".to_owned()));
        assert!(parsed("localhost").is_err());
        assert!(parsed("127.0.0.1").is_err());
        assert!(parsed("192.168.1.2:7070").is_err());
    }

    #[test]
    fn a_listen_port_out_of_range_is_named() {
        let expected = Err("invalid port \"99999\": expected a number from 0 to 65535".to_owned());
        assert_eq!(super::parse_listen("127.0.0.1:99999"), expected);
        assert_eq!(super::parse_listen("[::1]:99999"), expected);
        assert_eq!(super::parse_listen("localhost:99999"), expected);
        // Not an address with a port at all: the general message.
        let general = super::parse_listen("::1:99999").unwrap_err();
        assert!(general.starts_with("expected an IP address and a port"), "{general}");
    }

    #[test]
    fn every_positional_argument_says_what_it_is() {
        let mut found = Vec::new();
        positionals(&super::Cli::command(), "autopatch", &mut found);
        assert!(found.iter().any(|(name, _)| name == "autopatch stack delete <name>"), "{found:?}");
        let missing: Vec<&String> =
            found.iter().filter(|(_, help)| help.is_none()).map(|(name, _)| name).collect();
        assert!(missing.is_empty(), "positional arguments without help: {missing:?}");
    }
}
