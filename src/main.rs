//! The `slaprobe` command line: parses arguments, sets up logging, loads
//! configuration and maps errors to exit codes (0 ok, 1 runtime failure,
//! 2 usage or configuration error). Everything else is in the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use slaprobe::app::{self, App};
use slaprobe::config;
use slaprobe::util::format::error_chain;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "slaprobe",
    version,
    about = "Synthetic end-to-end SLA prober for Apache Kafka"
)]
struct Cli {
    /// Log lines as text (for a person) or as one JSON object per line
    /// (for a log pipeline: timestamp, level, target, message and fields).
    #[arg(long, global = true, value_enum, env = "SLAPROBE_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    Html,
    Markdown,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Probe an in-process 3-broker Kafka cluster and a simulated pipeline
    /// with probes/demo.yaml.
    Demo {
        /// Stop after this long (e.g. 30s, 5m).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// HTTP listen address.
        #[arg(long, env = "SLAPROBE_LISTEN", default_value = "127.0.0.1:9464")]
        listen: SocketAddr,
        /// Play a fault script (pipeline stall, drops, duplicates, reorders,
        /// a leaking filter, a broker down) so every outcome can be seen.
        #[arg(long)]
        faults: bool,
    },
    /// Run the configured probes (production mode).
    Run {
        /// YAML files or directories of them (merged).
        #[arg(short = 'c', long = "config", env = "SLAPROBE_CONFIG", default_value = "probes/", num_args = 1..)]
        config: Vec<PathBuf>,
        /// HTTP listen address; overrides server.listen.
        #[arg(long, env = "SLAPROBE_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Validate the configuration and print the plan.
    Check {
        /// YAML files or directories of them (merged).
        #[arg(short = 'c', long = "config", env = "SLAPROBE_CONFIG", default_value = "probes/", num_args = 1..)]
        config: Vec<PathBuf>,
    },
    /// Write the SLA report of the configured SLOs: attainment against
    /// each objective, error budget spent, the worst hours, incidents and a
    /// daily chart, from Prometheus' history (or state_dir's).
    Report {
        /// YAML files or directories of them (merged).
        #[arg(short = 'c', long = "config", env = "SLAPROBE_CONFIG", default_value = "probes/", num_args = 1..)]
        config: Vec<PathBuf>,
        /// The span up to now the report covers (e.g. 30d, 7d, 1h).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
        period: Duration,
        /// html (one self-contained page), markdown or json.
        #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
        format: ReportFormat,
        /// The Prometheus that scrapes slaprobe (e.g. http://prometheus:9090);
        /// without it, the SLO windows state_dir holds.
        #[arg(long)]
        prometheus: Option<String>,
        /// Write the report to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write Prometheus recording and alerting rules, an Alertmanager
    /// routing example and a Grafana dashboard for the configured SLOs.
    Rules {
        /// YAML files or directories of them (merged).
        #[arg(short = 'c', long = "config", env = "SLAPROBE_CONFIG", default_value = "probes/", num_args = 1..)]
        config: Vec<PathBuf>,
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Write nothing; exit 1 if any file in --out is missing or stale.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    // OpenSSL before anything else uses it (librdkafka's clients, the
    // connection checks), so that it never registers its atexit cleanup:
    // the shutdown is bounded and may leave a blocking straggler behind (a
    // lag request, a client's broker thread in a TLS handshake), and
    // OpenSSL freeing its tables under such a thread at exit crashed the
    // process (SIGSEGV after SIGTERM). The openssl crate's init passes
    // OPENSSL_INIT_NO_ATEXIT, and only the first initialisation counts.
    openssl::init();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colours for a person at a terminal; plain text for a file, a
        // journal or a container's log, which escape codes would litter.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    let json = cli.log_format == LogFormat::Json;
    match cli.command {
        Command::Check { config } => match load(&config, json) {
            Ok(cfg) => {
                print!("{}", slaprobe::generate::plan(&cfg));
                warn_unusable_listeners(&cfg);
                if let Some(dir) = &cfg.state_dir {
                    println!("{}", slaprobe::state::describe(dir));
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Report {
            config,
            period,
            format,
            prometheus,
            out,
        } => match load(&config, json) {
            Ok(cfg) => report(&cfg, period, format, prometheus.as_deref(), out.as_deref()),
            Err(code) => code,
        },
        Command::Rules { config, out, check } => match load(&config, json) {
            Ok(cfg) => rules(&cfg, &config, &out, check),
            Err(code) => code,
        },
        Command::Run { config, listen } => {
            let cfg = match load(&config, json) {
                Ok(cfg) => cfg,
                Err(code) => return code,
            };
            let listen = listen.unwrap_or(cfg.server.listen);
            runtime(json, |cancel| async move {
                let listener = app::bind(listen).await.map_err(failure)?;
                let app = App::build(&cfg).map_err(failure)?;
                app.run(listener, cancel).await.map_err(failure)
            })
        }
        Command::Demo {
            duration,
            listen,
            faults,
        } => runtime(json, |cancel| async move {
            slaprobe::demo::run(listen, duration, faults, cancel)
                .await
                .map_err(|e| (ExitCode::from(1), error_chain(&e)))
        }),
    }
}

fn load(paths: &[PathBuf], json: bool) -> Result<config::Config, ExitCode> {
    config::load(paths, &|k| std::env::var(k).ok()).map_err(|e| {
        if json {
            tracing::error!(error = %e, "configuration error");
        } else {
            eprintln!("configuration error:\n{e}");
        }
        ExitCode::from(2)
    })
}

/// `slaprobe rules`: writes the generated files, or with `check` only
/// compares them, so CI can fail when committed rules lag the config.
fn rules(cfg: &config::Config, paths: &[PathBuf], out: &Path, check: bool) -> ExitCode {
    let files = slaprobe::generate::render(cfg);
    if check {
        let stale = slaprobe::generate::stale(out, &files);
        for name in &stale {
            let path = out.join(name);
            let why = if path.exists() { "stale" } else { "missing" };
            eprintln!("{why}: {}", path.display());
        }
        if stale.is_empty() {
            println!("{}: up to date", out.display());
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "regenerate with: slaprobe rules -c {} --out {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            out.display()
        );
        return ExitCode::from(1);
    }
    if let Err(e) = slaprobe::generate::write(out, &files) {
        eprintln!("slaprobe: cannot write to {}: {e}", out.display());
        return ExitCode::from(1);
    }
    for f in &files {
        println!("wrote {}", out.join(f.name).display());
    }
    ExitCode::SUCCESS
}

/// `slaprobe report`: 0 with the report written, 1 when the history could
/// not be read.
fn report(
    cfg: &config::Config,
    period: Duration,
    format: ReportFormat,
    prometheus: Option<&str>,
    out: Option<&Path>,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slaprobe: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let now = slaprobe::util::format::unix_now();
    let report = match rt.block_on(slaprobe::report::from_config(cfg, period, prometheus, now)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("slaprobe: {}", error_chain(&e));
            return ExitCode::from(1);
        }
    };
    let format = match format {
        ReportFormat::Html => slaprobe::report::Format::Html,
        ReportFormat::Markdown => slaprobe::report::Format::Markdown,
        ReportFormat::Json => slaprobe::report::Format::Json,
    };
    let (_, body) = format.write(&report);
    match out {
        None => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, body) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("slaprobe: cannot write {}: {e}", path.display());
                ExitCode::from(1)
            }
        },
    }
}

/// Listeners whose files (a CA, a key) cannot be read: a warning, as they
/// may exist only where slaprobe runs; `run` stops on them.
fn warn_unusable_listeners(cfg: &config::Config) {
    for c in &cfg.connection_checks {
        if let Err(e) = slaprobe::brokers::listeners(c) {
            eprintln!("slaprobe: warning: {e} (`run` stops here unless the file is there)");
        }
    }
}

/// A run's error as (exit code, message with its causes): a state file
/// from a newer slaprobe is a configuration problem (2); anything else a
/// runtime failure (1).
fn failure(e: app::RunError) -> (ExitCode, String) {
    let code = match &e {
        app::RunError::State(slaprobe::state::StateError::Newer { .. }) => 2,
        _ => 1,
    };
    (ExitCode::from(code), error_chain(&e))
}

/// The async runtime's pool for blocking calls.
const BLOCKING_THREADS: usize = 16;

/// Runs `f` on a multi-threaded runtime with SIGINT/SIGTERM wired to its
/// cancellation token; its error is the last line on stderr (a JSON log
/// line with `json`).
fn runtime<F, Fut>(json: bool, f: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), (ExitCode, String)>>,
{
    // Blocking work is metadata and offset requests, flushes and client
    // drops, a few milliseconds each on a healthy cluster; a bounded pool
    // keeps a hundred probes refreshing at once from costing a hundred
    // threads (they queue instead).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slaprobe: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let cancel = CancellationToken::new();
    let result = rt.block_on(async {
        tokio::spawn(shutdown_on_signal(cancel.clone()));
        f(cancel).await
    });
    // Clients and threads have been told to stop; don't let a straggler
    // hold the process.
    rt.shutdown_timeout(app::RUNTIME_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            if json {
                tracing::error!(error = %e, "slaprobe stopped");
            } else {
                eprintln!("slaprobe: {e}");
            }
            code
        }
    }
}

/// The first SIGINT/SIGTERM cancels `cancel` (a graceful shutdown, bounded
/// by [`app::SHUTDOWN_GRACE`] whatever is hung); a second one exits at once.
async fn shutdown_on_signal(cancel: CancellationToken) {
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for signals: {e}");
            return;
        }
    };
    signals.next().await;
    tracing::info!("shutting down");
    cancel.cancel();
    std::thread::spawn(|| {
        std::thread::sleep(app::SHUTDOWN_GRACE);
        eprintln!(
            "slaprobe: shutdown did not finish within {:?}; exiting",
            app::SHUTDOWN_GRACE
        );
        std::process::exit(1);
    });
    signals.next().await;
    eprintln!("slaprobe: second signal; exiting without finishing shutdown");
    std::process::exit(1);
}

/// SIGINT and SIGTERM as one stream.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
