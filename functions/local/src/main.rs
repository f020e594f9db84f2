//! `automations`: the whole engine in one process on embedded storage, and the agent that
//! runs a queue's jobs on the team's own machines.

mod agent;
mod client;

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use client::{Client, Connection, Failure};
use shared::config::settings_from_env;
use shared::http::{AppState, router};
use shared::local::LocalRuntime;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "automations",
    version,
    about = "Event-driven automations for ML model registries and training runs",
    after_help = MAIN_EXAMPLE
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, evaluation and delivery in one process on embedded storage.
    #[command(after_help = SERVE_EXAMPLE)]
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Directory that keeps the state (created if missing).
        #[arg(long, default_value = "./.automations")]
        data_dir: PathBuf,
        /// File with the 32-byte key that encrypts secrets [default: <data-dir>/secrets.key].
        #[arg(long)]
        secrets_key_file: Option<PathBuf>,
    },
    /// Run the jobs of a queue on this machine: claim one, run the command with the job on
    /// its stdin, report its exit code and output; SIGTERM lets running jobs finish.
    #[command(after_help = AGENT_EXAMPLE)]
    Agent {
        /// The queue whose jobs to run.
        #[arg(long)]
        queue: String,
        /// Jobs run at once.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
        /// The server's URL.
        #[arg(long, env = "AUTOMATIONS_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An agent (or admin) key of the team.
        #[arg(long, env = "AUTOMATIONS_KEY", hide_env_values = true)]
        key: String,
        /// The team whose queue it is.
        #[arg(long, env = "AUTOMATIONS_TEAM")]
        team: String,
        /// The name this agent claims under [default: <host name>-<process id>].
        #[arg(long)]
        name: Option<String>,
        /// Claim without waiting on the server, and look again after this many seconds
        /// when no job was there [default: claims wait up to 20 s on the server].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
        poll_interval: Option<u64>,
        /// The command to run for each job, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Make the team's queues, integrations and automations match YAML files: print the
    /// plan, then apply it (nothing is changed when any object is invalid).
    #[command(after_help = APPLY_EXAMPLE)]
    Apply {
        /// A YAML file, or a directory whose .yaml and .yml files are read.
        #[arg(short = 'f', long = "file", value_name = "FILE|DIR")]
        path: PathBuf,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Delete the team's objects that the files do not have.
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Write the team's queues, integrations and automations as YAML that `apply` takes
    /// back with no changes.
    #[command(after_help = EXPORT_EXAMPLE)]
    Export {
        /// The file to write [default: stdout].
        #[arg(short = 'o', long = "out-file", value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Send events.
    #[command(after_help = EVENTS_EXAMPLE)]
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// List, show and retry executions.
    #[command(after_help = EXECUTIONS_LIST_EXAMPLE)]
    Executions {
        #[command(subcommand)]
        command: ExecutionsCommand,
    },
    /// Try an integration.
    #[command(after_help = INTEGRATIONS_TEST_EXAMPLE)]
    Integrations {
        #[command(subcommand)]
        command: IntegrationsCommand,
    },
    /// Set team secrets.
    #[command(after_help = SECRETS_SET_EXAMPLE)]
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Print a shell completion script.
    #[command(after_help = COMPLETIONS_EXAMPLE)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Send events from a file or stdin: one JSON event, a JSON array, {"events": [...]}
    /// or NDJSON, in batches of up to 1,000, with a summary of what was accepted.
    #[command(after_help = EVENTS_EXAMPLE)]
    Send {
        /// The file to read; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Subcommand)]
enum ExecutionsCommand {
    /// The newest executions of the team, or of one automation.
    #[command(after_help = EXECUTIONS_LIST_EXAMPLE)]
    List {
        /// Only this automation's (by name).
        #[arg(long)]
        automation: Option<String>,
        /// Only those of this status: PENDING, FINISHED or FAILED.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        #[command(flatten)]
        connection: Connection,
    },
    /// One execution: its event, the payload as sent (secrets masked), every attempt and
    /// the result.
    #[command(after_help = "Example:\n  automations executions show 01JDX3K2M4N5P6Q7R8S9T0V1W2")]
    Show {
        /// The execution's id (see `executions list`).
        id: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Send a finished or failed execution again.
    #[command(
        after_help = "Example:\n  automations executions retry \"$(automations executions list --status FAILED --limit 1 --output json | jq -r '.executions[0].id')\""
    )]
    Retry {
        /// The execution's id (see `executions list`).
        id: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Subcommand)]
enum IntegrationsCommand {
    /// Send one real request through an integration and show the receiver's answer; exits
    /// 1 when the receiver did not accept it.
    #[command(after_help = INTEGRATIONS_TEST_EXAMPLE)]
    Test {
        /// The integration's name.
        name: String,
        /// The JSON body to send (webhooks) [default: a short test message].
        #[arg(long)]
        payload: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Set a team secret, reading its value from stdin (never from the command line).
    #[command(after_help = SECRETS_SET_EXAMPLE)]
    Set {
        /// The secret's name: capital letters, digits and '_'.
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
}

const MAIN_EXAMPLE: &str = "Examples:
  automations serve                                  run everything locally on :8080
  export AUTOMATIONS_KEY=atm_… AUTOMATIONS_TEAM=acme
  automations apply -f automations/ --dry-run        see what would change
  automations events send events.ndjson              send events
  automations executions list --status FAILED        see what failed

The client commands read --url, --key and --team, or AUTOMATIONS_URL, AUTOMATIONS_KEY and
AUTOMATIONS_TEAM. They exit 0 when it worked, 1 when the server refused, 2 on a usage error.";

const SERVE_EXAMPLE: &str = "Example:
  AUTOMATIONS_OPERATOR_KEY=$(openssl rand -hex 24) automations serve --listen 127.0.0.1:8080";

const APPLY_EXAMPLE: &str = "Example:
  automations apply -f automations/ --dry-run
  automations apply -f automations/ --prune

A file holds the lists queues:, integrations: and automations:, each object in the API's
form; an automation names its integration (action.integration) by the integration's name.
Objects are matched by name: renaming one is a delete (with --prune) and a create.";

const EXPORT_EXAMPLE: &str = "Example:
  automations export -o automations/team.yaml && automations apply -f automations/  # no changes";

const EVENTS_EXAMPLE: &str = "Example:
  automations events send events.ndjson
  echo '{\"event_type\":\"LINK_ARTIFACT\",\"project\":\"detector\",\"artifact\":{\"collection\":\"resnet\",\"version\":\"v4\"}}' | automations events send

An event the server refuses is named with its reason and the others are still sent; the
command then exits 1.";

const EXECUTIONS_LIST_EXAMPLE: &str = "Example:
  automations executions list --automation deploy-on-production --status FAILED";

const INTEGRATIONS_TEST_EXAMPLE: &str = "Example:
  automations integrations test ci --payload '{\"hello\": \"world\"}'";

const SECRETS_SET_EXAMPLE: &str = "Example:
  printf %s \"$CI_TOKEN\" | automations secrets set CI_TOKEN";

const COMPLETIONS_EXAMPLE: &str = "Example:
  automations completions bash > ~/.local/share/bash-completion/completions/automations
  automations completions zsh > \"${fpath[1]}/_automations\"
  automations completions fish > ~/.config/fish/completions/automations.fish";

const AGENT_EXAMPLE: &str = "Example:
  AUTOMATIONS_KEY=atm_… automations agent --team acme --queue gpu -- python eval.py

For each job the command gets the job as JSON on stdin and in the file named by
AUTOMATIONS_JOB_FILE, with AUTOMATIONS_JOB_ID and AUTOMATIONS_EXECUTION_ID set. Exit code 0
finishes the job; any other fails it.";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            shared::config::QUIET_LOG_DIRECTIVES.iter().fold(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                |filter, directive| match directive.parse() {
                    Ok(directive) => filter.add_directive(directive),
                    Err(_) => filter,
                },
            ),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve {
            listen,
            data_dir,
            secrets_key_file,
        } => runtime.block_on(serve(listen, data_dir, secrets_key_file)),
        Command::Agent {
            queue,
            concurrency,
            url,
            key,
            team,
            name,
            poll_interval,
            command,
        } => runtime.block_on(agent::run(agent::Options {
            url,
            key,
            team,
            queue,
            concurrency: usize::from(concurrency),
            name: name.unwrap_or_else(default_agent_name),
            poll_interval: poll_interval.map(std::time::Duration::from_secs),
            command,
        })),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "automations",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        client_command => return run_client(&runtime, client_command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A client command: its exit code says whether the server refused (1) or the command was
/// used wrongly (2).
fn run_client(runtime: &tokio::runtime::Runtime, command: Command) -> ExitCode {
    let result = runtime.block_on(async move {
        let connect = |c: &Connection| Client::new(c);
        match command {
            Command::Apply {
                path,
                dry_run,
                prune,
                connection,
            } => client::apply::apply(&connect(&connection)?, &path, dry_run, prune).await,
            Command::Export { out, connection } => {
                client::apply::export(&connect(&connection)?, out.as_deref()).await
            }
            Command::Events {
                command: EventsCommand::Send { file, connection },
            } => client::events::send(&connect(&connection)?, file.as_deref()).await,
            Command::Executions { command } => match command {
                ExecutionsCommand::List {
                    automation,
                    status,
                    limit,
                    connection,
                } => {
                    client::executions::list(
                        &connect(&connection)?,
                        automation.as_deref(),
                        status.as_deref(),
                        usize::from(limit),
                    )
                    .await
                }
                ExecutionsCommand::Show { id, connection } => {
                    client::executions::show(&connect(&connection)?, &id).await
                }
                ExecutionsCommand::Retry { id, connection } => {
                    client::executions::retry(&connect(&connection)?, &id).await
                }
            },
            Command::Integrations {
                command:
                    IntegrationsCommand::Test {
                        name,
                        payload,
                        connection,
                    },
            } => {
                client::integrations::test(&connect(&connection)?, &name, payload.as_deref()).await
            }
            Command::Secrets {
                command: SecretsCommand::Set { name, connection },
            } => client::integrations::set_secret(&connect(&connection)?, &name).await,
            Command::Serve { .. } | Command::Agent { .. } | Command::Completions { .. } => {
                Err(Failure::Usage("not a client command".into()))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// `<host name>-<process id>`: one name per agent process.
fn default_agent_name() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agent".to_string());
    format!("{host}-{}", std::process::id())
}

async fn serve(
    listen: SocketAddr,
    data_dir: PathBuf,
    secrets_key: Option<PathBuf>,
) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&data_dir)
        .map_err(|e| format!("--data-dir {}: {e}", data_dir.display()))?;
    warn_if_open(&data_dir);
    let settings = settings_from_env()?;
    // Bound first: a server that cannot listen makes no key and takes no lock.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let local = LocalRuntime::open(&data_dir, secrets_key, settings)?;
    let operator_key = operator_key(&data_dir)?;
    local.recover().await?;
    let state = AppState::new(local.engine.clone(), &operator_key)
        .with_dead_letters(Arc::new(local.dead_letters()));
    let app = router(state);
    tracing::info!(%address, data_dir = %data_dir.display(), "automations serving");

    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = {
        let stop_rx = stop_rx.clone();
        async move { local.run_workers(stop_rx).await }
    };
    let workers = tokio::spawn(workers);
    let mut http_stop = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _stopped = http_stop.wait_for(|stop| *stop).await;
    });
    let server = tokio::spawn(async move { server.await });

    wait_for_signal().await?;
    tracing::info!("shutting down: no new requests; finishing deliveries in flight");
    stop_tx.send_replace(true);
    server
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    workers.await.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Until SIGTERM or Ctrl-C.
async fn wait_for_signal() -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.map_err(|e| e.to_string())?,
    }
    Ok(())
}

/// The data directory holds the database and the keys: warn when other users may enter it.
fn warn_if_open(data_dir: &Path) {
    match fs::metadata(data_dir) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => tracing::warn!(
            data_dir = %data_dir.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the data directory is open to other users; chmod 700 it"
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(data_dir = %data_dir.display(), error = %e, "cannot read the data directory's mode")
        }
    }
}

/// The operator key: `AUTOMATIONS_OPERATOR_KEY`, else the key in `<data-dir>/operator-key`
/// (which must be readable by its owner only), else a new one written there (mode 0600)
/// and printed once. Logs which one is in force, never the key.
fn operator_key(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join("operator-key");
    let saved = saved_operator_key(&path);
    if let Ok(key) = std::env::var(OPERATOR_KEY_ENV) {
        let key = key.trim().to_string();
        if key.len() < 32 {
            return Err(format!("{OPERATOR_KEY_ENV} must be at least 32 characters"));
        }
        tracing::info!(source = OPERATOR_KEY_ENV, "operator key in force");
        match saved {
            Ok(Some(other)) if other != key => tracing::warn!(
                file = %path.display(),
                "{} holds another operator key, which is not accepted while {OPERATOR_KEY_ENV} is set; delete the file, or unset the variable to use it",
                path.display()
            ),
            Err(e) => tracing::warn!(
                "{e}; it is not used while {OPERATOR_KEY_ENV} is set, and would stop a start without it"
            ),
            _ => {}
        }
        return Ok(key);
    }
    if let Some(key) = saved? {
        tracing::info!(source = %path.display(), "operator key in force");
        return Ok(key);
    }
    let key = shared::domain::ids::new_api_key("op");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(key.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    tracing::info!(source = %path.display(), "operator key generated and in force; it is printed once on stdout");
    // Printed once, on stdout, so it is not mixed into the logs.
    println!("operator key (also saved to {}): {key}", path.display());
    Ok(key)
}

const OPERATOR_KEY_ENV: &str = "AUTOMATIONS_OPERATOR_KEY";

/// The key saved in `path`, if there is one; one that others may read, or that is too
/// short, is an error.
fn saved_operator_key(path: &Path) -> Result<Option<String>, String> {
    match fs::read_to_string(path) {
        Ok(_) if fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) => {
            Err(format!(
                "{}: the operator key must not be readable by others (chmod 600)",
                path.display()
            ))
        }
        Ok(key) if key.trim().len() >= 32 => Ok(Some(key.trim().to_string())),
        Ok(_) => Err(format!(
            "{}: the operator key must be at least 32 characters",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
