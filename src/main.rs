//! The `causeway` command: CLI, config loading, and handing over to
//! [`app::run`], which wires the stages.

mod connectors_cli;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use causeway_app as app;
use causeway_app::config::{self, Config, LogEncoding};

/// causeway: OpenTelemetry trace analyzer: OTLP in, RED series, anomalies
/// and root-cause analysis out.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the receivers, the processor and the API until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Check a config file; print each problem with file, line and field.
    Validate {
        /// The config file.
        #[arg(long, short, env = "CAUSEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Print the SHA-256 of an API key read from stdin, for `auth.api_keys[].key_sha256`.
    HashKey,
    /// Feed OTLP files (protobuf or OTLP/JSON, one request per file or per
    /// line, optionally .gz) through the pipeline at full speed, in event
    /// time; results land in the data directory.
    Replay(ReplayArgs),
    /// The Nezha Train Ticket fault data set (CSV spans and logs) as OTLP.
    Nezha {
        #[command(subcommand)]
        command: causeway_lab::NezhaCommand,
    },
    /// Generate web-shop traffic with a daily cycle and injected faults:
    /// send it to a receiver or write OTLP files, plus the ground truth.
    Simulate(causeway_lab::SimulateArgs),
    /// A bad deploy in a simulated web shop, through the whole pipeline,
    /// and the RCA it gets (a few seconds).
    Demo(causeway_lab::DemoArgs),
    /// Read-only connectors (GitHub, Jira, Slack, …): check credentials,
    /// sync, seal credentials.
    Connectors {
        #[command(subcommand)]
        command: connectors_cli::ConnectorsCommand,
    },
    /// Score causeway on labelled fault data.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Every case of a Nezha-format data set (DIR holds `<day>/` with a
    /// fault list, trace/ and log/, and `baseline/<day>/`) through the
    /// pipeline; per case, the incident found and its onset.
    Nezha {
        /// The data set's root directory.
        dir: PathBuf,
        /// End with one JSON line of totals.
        #[arg(long)]
        json: bool,
        /// Also list every incident found, with its anomalies.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Every fault kind injected into every service (and edge latency on
    /// every call edge) of the simulated web shop, one scenario each;
    /// per scenario the incident found and the rank of the true service
    /// in its RCA; AC@1..5 overall and per kind.
    Simulate(causeway_lab::SimEvalArgs),
    /// Random applications (10 to 60 services) with random faults of the
    /// kinds chaos benchmarks inject, and realistic noise; a tune and a
    /// test set of seeds; AC@1..5 per fault kind and detection precision.
    Bench(causeway_lab::BenchArgs),
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Config file (YAML); without it, the embedded default.
    #[arg(long, short, env = "CAUSEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides storage.data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The tenant the spans belong to.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// OTLP files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Config file (YAML). Without it, the embedded default: loopback
    /// ports 4317/4318/4319, data in ./causeway-data, tenant `default`.
    #[arg(long, short, env = "CAUSEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides receivers.otlp.protocols.grpc.endpoint.
    #[arg(long, value_parser = parse_addr)]
    grpc_addr: Option<SocketAddr>,
    /// Overrides receivers.otlp.protocols.http.endpoint.
    #[arg(long, value_parser = parse_addr)]
    http_addr: Option<SocketAddr>,
    /// Overrides exporters.api.endpoint.
    #[arg(long, value_parser = parse_addr)]
    api_addr: Option<SocketAddr>,
    /// Overrides storage.data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    causeway_server::config::parse_socket_addr(s)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => match Config::load(&config) {
            Ok(_) => {
                eprintln!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(2)
            }
        },
        Command::HashKey => {
            let mut key = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut key) {
                eprintln!("cannot read the key from stdin: {e}");
                return ExitCode::FAILURE;
            }
            let key = key.trim_end_matches(['\r', '\n']);
            if key.is_empty() {
                eprintln!("no key on stdin (try: printf %s \"$KEY\" | causeway hash-key)");
                return ExitCode::FAILURE;
            }
            #[allow(clippy::print_stdout)]
            {
                println!("{}", causeway_server::key_digest_hex(key));
            }
            ExitCode::SUCCESS
        }
        Command::Serve(args) => serve(args),
        Command::Replay(args) => replay(args),
        Command::Nezha { command } => causeway_lab::nezha(command),
        Command::Simulate(args) => causeway_lab::simulate(args),
        Command::Demo(args) => causeway_lab::demo(args),
        Command::Connectors { command } => {
            app::init_cli_logging();
            connectors_cli::run(command)
        }
        Command::Eval {
            command: EvalCommand::Nezha { dir, json, verbose },
        } => {
            app::init_cli_logging();
            match causeway_lab::eval_nezha(&dir, json, verbose) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("causeway eval nezha: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Eval {
            command: EvalCommand::Bench(args),
        } => {
            app::init_cli_logging();
            if causeway_lab::eval_bench(&args) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Eval {
            command: EvalCommand::Simulate(args),
        } => {
            app::init_cli_logging();
            if causeway_lab::eval_simulate(&args) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn replay(args: ReplayArgs) -> ExitCode {
    let tenant = match causeway_model::TenantId::new(&args.tenant) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("--tenant {:?}: {e}", args.tenant);
            return ExitCode::from(2);
        }
    };
    let serve_args = ServeArgs {
        config: args.config,
        grpc_addr: None,
        http_addr: None,
        api_addr: None,
        data_dir: args.data_dir,
    };
    let (config, runtime) = match start(&serve_args) {
        Ok(started) => started,
        Err(code) => return code,
    };
    match runtime.block_on(app::replay(config, tenant, args.files)) {
        Ok(report) => {
            for e in &report.errors {
                eprintln!("{e}");
            }
            for (incident, anomalies) in &report.incidents {
                let subjects: Vec<String> = anomalies
                    .iter()
                    .map(|a| format!("{} {}", a.metric, a.subject))
                    .collect();
                eprintln!(
                    "incident {} {} onset {} services [{}]: {}",
                    incident.id,
                    incident.severity.as_str(),
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH
                            + std::time::Duration::from_nanos(
                                u64::try_from(incident.onset_ns).unwrap_or(0)
                            )
                    ),
                    incident
                        .services
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    subjects.join("; ")
                );
            }
            let secs = report.elapsed.as_secs_f64().max(1e-9);
            eprintln!(
                "replayed {} file(s), {} request(s), {} span(s) ({} rejected) in {:.2} s: {:.0} spans/s; {} incident(s)",
                report.files,
                report.requests,
                report.spans,
                report.rejected_spans,
                secs,
                report.spans as f64 / secs,
                report.incidents.len()
            );
            if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("causeway replay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let (config, runtime) = match start(&args) {
        Ok(started) => started,
        Err(code) => return code,
    };
    match runtime.block_on(app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("causeway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The validated config, logging set up, and the async runtime; or the
/// exit code after saying what is wrong.
fn start(args: &ServeArgs) -> Result<(Config, tokio::runtime::Runtime), ExitCode> {
    let config = load_for_serve(args).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })?;
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("causeway")
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })?;
    Ok((config, runtime))
}

/// The config file (or the embedded default) with command-line overrides
/// applied, then validated as a whole.
fn load_for_serve(args: &ServeArgs) -> Result<Config, config::ConfigErrors> {
    let (file, mut config) = match &args.config {
        Some(path) => (path.display().to_string(), Config::load(path)?),
        None => ("<embedded default>".to_owned(), Config::default()),
    };
    if let Some(a) = args.grpc_addr {
        config
            .receivers
            .otlp
            .protocols
            .grpc
            .get_or_insert_with(Default::default)
            .endpoint = a;
    }
    if let Some(a) = args.http_addr {
        config
            .receivers
            .otlp
            .protocols
            .http
            .get_or_insert_with(Default::default)
            .endpoint = a;
    }
    if let Some(a) = args.api_addr {
        config.exporters.api.endpoint = a;
    }
    if let Some(d) = &args.data_dir {
        config.storage.data_dir = d.clone();
    }
    let problems = config.validate();
    if problems.is_empty() {
        return Ok(config);
    }
    Err(config::ConfigErrors(
        problems
            .into_iter()
            .map(|p| config::Located {
                file: file.clone(),
                line: None,
                column: None,
                field: p.path,
                message: p.message,
            })
            .collect(),
    ))
}

fn init_logging(config: &Config) {
    let logs = &config.service.telemetry.logs;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&logs.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(causeway_app::logging::RedactingStderr);
    match logs.encoding {
        LogEncoding::Console => builder.init(),
        LogEncoding::Json => builder.json().init(),
    }
}
