//! The `indextap` binary.
//!
//! - `indextap proxy`: the transparent proxy, capturing shapes and serving advice.
//! - `indextap recommend --from URL|FILE`: print the advice (JSON, mongosh, SQL, ...).
//! - `indextap merge FILE_OR_URL...`: combine snapshots from a fleet of sidecars.
//! - `indextap shapes --from URL|FILE`: list the captured shapes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indextap_proxy::cli;

#[derive(Debug, Parser)]
#[command(
    name = "indextap",
    version,
    about = "Index advice from real MongoDB and PostgreSQL traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the transparent proxy.
    Proxy(Box<ProxyArgs>),
    /// Print index recommendations from a running proxy or a snapshot file.
    Recommend(cli::RecommendArgs),
    /// Merge snapshots (files or admin URLs) into one.
    Merge(cli::MergeArgs),
    /// List the captured query shapes.
    Shapes(cli::ShapesArgs),
}

#[derive(Debug, Args)]
struct ProxyArgs {
    /// TOML configuration file (also INDEXTAP_CONFIG).
    #[arg(long, env = "INDEXTAP_CONFIG")]
    config: Option<PathBuf>,
    /// MongoDB listen address, HOST:PORT.
    #[arg(long)]
    mongo_listen: Option<String>,
    /// MongoDB upstream, HOST:PORT.
    #[arg(long)]
    mongo_upstream: Option<String>,
    /// Address written into hello replies for replica-set members (default: the listen address).
    #[arg(long)]
    mongo_advertise: Option<String>,
    /// MongoDB URI used to read existing indexes (default: the upstream, no credentials).
    #[arg(long)]
    mongo_admin_uri: Option<String>,
    /// TLS toward MongoDB clients: refuse, terminate or passthrough.
    #[arg(long)]
    mongo_tls_mode: Option<String>,
    /// Certificate (PEM) presented to MongoDB clients in terminate mode.
    #[arg(long)]
    mongo_tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --mongo-tls-cert.
    #[arg(long)]
    mongo_tls_key: Option<PathBuf>,
    /// PostgreSQL listen address, HOST:PORT.
    #[arg(long)]
    pg_listen: Option<String>,
    /// PostgreSQL upstream, HOST:PORT.
    #[arg(long)]
    pg_upstream: Option<String>,
    /// PostgreSQL admin URL (postgres://USER:PASSWORD@HOST:PORT/DB, password and database
    /// optional), to read the catalog and verify advice.
    #[arg(long)]
    pg_admin_url: Option<String>,
    /// TLS toward PostgreSQL clients: refuse, terminate or passthrough.
    #[arg(long)]
    pg_tls_mode: Option<String>,
    /// Certificate (PEM) presented in terminate mode.
    #[arg(long)]
    pg_tls_cert: Option<PathBuf>,
    /// Private key (PEM) for the certificate.
    #[arg(long)]
    pg_tls_key: Option<PathBuf>,
    /// Admin HTTP API address, HOST:PORT (default 127.0.0.1:9090).
    #[arg(long)]
    admin_listen: Option<String>,
    /// Directory for the state file that survives restarts (one proxy per directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Where to push the aggregate at every state interval and on shutdown: postgres://...,
    /// postgres (the --pg-admin-url), s3://bucket/prefix or file:///dir.
    #[arg(long)]
    snapshot_sink: Option<String>,
    /// This sidecar's entry in the snapshot sink (default: $POD_NAME, $HOSTNAME, host name).
    #[arg(long)]
    sidecar_id: Option<String>,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<String>,
    #[command(flatten)]
    advice: cli::AdviceArgs,
    /// Bytes the analysis may hold (shapes, their statistics, the SQL cache); past it the
    /// coldest shapes are evicted into per-collection "other" buckets.
    #[arg(long)]
    max_aggregate_bytes: Option<usize>,
}

impl ProxyArgs {
    fn overrides(self) -> (Option<PathBuf>, indextap_config::CliOverrides) {
        let overrides = indextap_config::CliOverrides {
            mongo_listen: self.mongo_listen,
            mongo_upstream: self.mongo_upstream,
            mongo_advertise: self.mongo_advertise,
            mongo_admin_uri: self.mongo_admin_uri,
            mongo_tls_mode: self.mongo_tls_mode,
            mongo_tls_cert: self.mongo_tls_cert,
            mongo_tls_key: self.mongo_tls_key,
            pg_listen: self.pg_listen,
            pg_upstream: self.pg_upstream,
            pg_admin_url: self.pg_admin_url,
            pg_tls_mode: self.pg_tls_mode,
            pg_tls_cert: self.pg_tls_cert,
            pg_tls_key: self.pg_tls_key,
            admin_listen: self.admin_listen,
            state_dir: self.state_dir,
            snapshot_sink: self.snapshot_sink,
            sidecar_id: self.sidecar_id,
            log_format: self.log_format,
            mongo_verify: self.advice.mongo_verify,
            mongo_sample_size: self.advice.mongo_sample_size,
            min_gain_percent: self.advice.min_gain_percent,
            max_indexes_per_namespace: self.advice.max_indexes_per_namespace,
            drop_min_window_secs: self.advice.drop_min_window_secs,
            index_write_cost_us: self.advice.index_write_cost_us,
            max_aggregate_bytes: self.max_aggregate_bytes,
            max_verified_candidates: self.advice.max_verified_candidates,
        };
        (self.config, overrides)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Proxy(args) => {
            let (file, overrides) = (*args).overrides();
            let config =
                match indextap_config::load(file.as_deref(), std::env::vars_os(), overrides) {
                    Ok(config) => config,
                    Err(error) => {
                        // Each error already says what it is about ("invalid configuration:",
                        // "configuration file ...", "environment variable ...").
                        eprintln!("indextap: {error}");
                        return ExitCode::from(2);
                    }
                };
            cli::init_logging(&config.log);
            cli::run_proxy(config)
        }
        Command::Recommend(args) => cli::recommend(args),
        Command::Merge(args) => cli::merge(args),
        Command::Shapes(args) => cli::shapes(args),
    }
}
