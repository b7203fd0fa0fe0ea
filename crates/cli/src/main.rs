//! The `autopatch` command: argument parsing, then one call into the
//! library crates per subcommand. Data goes to stdout (text or `--output
//! json`), progress and errors to stderr.

mod commands;
mod context;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

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
#[derive(Debug, Parser)]
#[command(name = "autopatch", version, verbatim_doc_comment, max_term_width = 100)]
struct Cli {
    /// Where autopatch keeps its state (SQLite database, build artifacts).
    #[arg(long, global = true, env = "AUTOPATCH_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,

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
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Build a golden image from Debian packages with mmdebstrap (the point
    /// release only: real, unpatched) and register it.
    Bootstrap(BootstrapArgs),
    /// List registered images, newest first.
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
    /// Debian release codename.
    #[arg(long, default_value = "bookworm")]
    suite: String,
    /// Debian mirror.
    #[arg(long, default_value = "http://deb.debian.org/debian")]
    mirror: String,
    /// Image name (the first part of its version `name/x.y.z/N`).
    #[arg(long, default_value = "golden")]
    name: String,
    /// Image semantic version.
    #[arg(long, default_value = "1.0.0")]
    version: String,
    /// Extra packages to include, comma separated.
    #[arg(long, value_delimiter = ',')]
    include: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum ComponentCommand {
    /// Register a component document (AWSTOE, schemaVersion 1.0). Versions
    /// are immutable: change the document, bump the version.
    Create {
        #[arg(long, short)]
        file: PathBuf,
        /// Defaults to the document's `name`.
        #[arg(long)]
        name: Option<String>,
        /// Semantic version x.y.z.
        #[arg(long, default_value = "1.0.0")]
        version: String,
    },
    /// Check a component document without registering it.
    Validate {
        #[arg(long, short)]
        file: PathBuf,
    },
    List,
}

#[derive(Debug, Subcommand)]
enum RecipeCommand {
    /// Register a recipe (its components must be registered and its parent must exist).
    Create {
        #[arg(long, short)]
        file: PathBuf,
    },
    List,
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Create or update a pipeline.
    Create {
        #[arg(long, short)]
        file: PathBuf,
    },
    List,
    /// Run a pipeline now (StartImagePipelineExecution), with live progress.
    /// Exits 0 when the image is AVAILABLE or nothing needed building, 1 when
    /// the build FAILED, 130 when it was cancelled.
    Start {
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
    /// List builds, newest first.
    List,
    /// Show a build: state, reason, artifact folder, events.
    Show { id: String },
    /// Ask a running build to stop (CancelImageCreation); it ends CANCELLED.
    Cancel { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            return render::fail(&format!("failed to start the async runtime: {error}"), None);
        }
    };
    runtime.block_on(commands::run(cli))
}
