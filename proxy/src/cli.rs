//! The subcommands behind `indextap`, apart from argument parsing.
//!
//! ## Layout
//! - [`run_proxy`]: the runtime around [`crate::server::run`].
//! - [`recommend`], [`merge`], [`shapes`]: read a running proxy's admin API, a snapshot file,
//!   or every sidecar's entry in a snapshot sink (merged).
//! - [`init_logging`]: tracing, as text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use indextap_analyzer::export::{self, Format};
use indextap_analyzer::snapshot::Snapshot;
use indextap_config::{LogConfig, SinkTarget};

use crate::catalog::CatalogSources;
use crate::sink::Sink;

/// `indextap recommend`.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// A running proxy's admin address (http://HOST:PORT), a snapshot file, or a snapshot
    /// sink (postgres://..., s3://bucket/prefix, file:///dir): every sidecar's entry, merged.
    #[arg(long)]
    pub from: String,
    /// Output format: json, mongosh, pymongo, sql, prisma, django or markdown.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Exit with status 3 when there is any recommendation (for CI gates).
    #[arg(long)]
    pub fail_on_recommendations: bool,
    /// With a snapshot file: MongoDB URI to read existing indexes from.
    #[arg(long)]
    pub mongo_admin_uri: Option<String>,
    /// With a snapshot file: PostgreSQL URL to read existing indexes and verify with HypoPG.
    #[arg(long)]
    pub pg_admin_url: Option<String>,
    /// With a snapshot file: how the advice is chosen and verified (defaults as the proxy's).
    #[command(flatten)]
    pub advice: AdviceArgs,
    #[command(flatten)]
    pub token: TokenArgs,
}

/// How recommendations are chosen and verified: `[advice]` of the configuration.
#[derive(Debug, Args)]
pub struct AdviceArgs {
    /// MongoDB verification: off, or sample (copies a $sample of each collection into a
    /// scratch database, dropped afterwards).
    #[arg(long)]
    pub mongo_verify: Option<String>,
    /// Documents sampled per MongoDB collection.
    #[arg(long)]
    pub mongo_sample_size: Option<u32>,
    /// The least verified cost reduction, in percent, for a recommendation.
    #[arg(long)]
    pub min_gain_percent: Option<u32>,
    /// At most this many new indexes per table or collection.
    #[arg(long)]
    pub max_indexes_per_namespace: Option<usize>,
    /// The shortest capture window, in seconds, for proposing to drop unused indexes.
    #[arg(long)]
    pub drop_min_window_secs: Option<u64>,
    /// What one index entry adds to one write, in microseconds (unset: measured from the
    /// inserts' time).
    #[arg(long)]
    pub index_write_cost_us: Option<u32>,
    /// At most this many PostgreSQL candidates measured with HypoPG per run, heaviest first;
    /// the rest are left out and named in the notes.
    #[arg(long)]
    pub max_verified_candidates: Option<usize>,
}

impl AdviceArgs {
    /// The defaults of `[advice]` with these flags laid over them.
    pub fn settings(&self) -> Result<indextap_config::AdviceConfig, String> {
        let mut settings = indextap_config::AdviceConfig::default();
        if let Some(verify) = &self.mongo_verify {
            settings.mongo_verify = verify
                .parse()
                .map_err(|e| format!("--mongo-verify {verify:?}: {e}"))?;
        }
        if let Some(size) = self.mongo_sample_size {
            settings.mongo_sample_size = size.max(1);
        }
        if let Some(percent) = self.min_gain_percent {
            settings.min_gain_percent = percent.min(100);
        }
        if let Some(max) = self.max_indexes_per_namespace {
            settings.max_indexes_per_namespace = max.max(1);
        }
        if let Some(secs) = self.drop_min_window_secs {
            settings.drop_min_window_secs = secs;
        }
        if let Some(micros) = self.index_write_cost_us {
            settings.index_write_cost_us = Some(micros);
        }
        if let Some(max) = self.max_verified_candidates {
            settings.max_verified_candidates = max.max(1);
        }
        Ok(settings)
    }
}

/// `indextap merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Snapshot files, admin URLs (http://HOST:PORT) of running proxies, or snapshot sinks
    /// (postgres://..., s3://bucket/prefix, file:///dir).
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Write the merged snapshot here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub token: TokenArgs,
}

/// `indextap shapes`.
#[derive(Debug, Args)]
pub struct ShapesArgs {
    /// A running proxy's admin address (http://HOST:PORT), a snapshot file, or a snapshot
    /// sink (postgres://..., s3://bucket/prefix, file:///dir).
    #[arg(long)]
    pub from: String,
    /// Sort by total_time (default), count or p95.
    #[arg(long)]
    pub sort: Option<String>,
    /// desc (default) or asc.
    #[arg(long)]
    pub order: Option<String>,
    /// Shapes per page (default 100, at most 1000).
    #[arg(long, conflicts_with = "all")]
    pub limit: Option<usize>,
    /// Shapes skipped.
    #[arg(long, conflicts_with = "all")]
    pub offset: Option<usize>,
    /// Every shape, in one document (fetched page by page).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub token: TokenArgs,
}

/// The bearer token for a guarded admin API.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// File holding the admin API bearer token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the admin API bearer token.
    #[arg(long)]
    pub token_env: Option<String>,
}

impl TokenArgs {
    fn token(&self) -> Result<Option<String>, String> {
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
            return Ok(Some(text.trim().to_string()));
        }
        if let Some(var) = &self.token_env {
            let value =
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?;
            return Ok(Some(value.trim().to_string()));
        }
        Ok(None)
    }
}

/// Directives added to every log filter, whatever the configured level: at debug level
/// sqlparser logs the tokens of what it parses, literal values from the traffic included.
const ALWAYS_SILENCED: [&str; 1] = ["sqlparser=off"];

/// Set up tracing from the log configuration.
pub fn init_logging(log: &LogConfig) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(&log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for directive in ALWAYS_SILENCED {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    // Colour codes only for a person at a terminal, never into log files or collectors.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let installed = if log.format == indextap_config::LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if installed.is_err() {
        eprintln!("indextap: logging was already initialised");
    }
}

/// The control runtime: signals, accept loops, the admin API, state flushes. The traffic
/// itself runs on the data threads (`threads`), so one thread is enough here.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Run the proxy until a signal; exit 0 on a clean shutdown.
pub fn run_proxy(config: indextap_config::Config) -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("indextap: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("indextap: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_url(from: &str) -> bool {
    from.starts_with("http://") || from.starts_with("https://")
}

/// `http://host:port` or `http://host:port/` → `http://host:port/<path>`.
fn api_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = base
        .strip_suffix("/api/v1/snapshot")
        .or_else(|| base.strip_suffix("/api/v1/recommendations"))
        .or_else(|| base.strip_suffix("/api/v1/shapes"))
        .unwrap_or(base);
    format!("{base}{path}")
}

fn http_get(url: &str, token: Option<&str>) -> Result<String, String> {
    let mut request = ureq::get(url).timeout(std::time::Duration::from_secs(60));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    match request.call() {
        Ok(response) => response
            .into_string()
            .map_err(|e| format!("cannot read the answer from {url}: {e}")),
        Err(ureq::Error::Status(code, _)) => Err(format!("{url} answered HTTP {code}")),
        Err(error) => Err(format!("cannot reach {url}: {error}")),
    }
}

fn read_snapshot(from: &str, token: Option<&str>) -> Result<Snapshot, String> {
    if SinkTarget::is_sink_url(from) {
        return read_sink(from);
    }
    let text = if is_url(from) {
        http_get(&api_url(from, "/api/v1/snapshot"), token)?
    } else {
        std::fs::read_to_string(from).map_err(|e| format!("cannot read {from}: {e}"))?
    };
    Snapshot::from_json(&text).map_err(|e| format!("{from} is not a usable snapshot: {e}"))
}

/// Every sidecar's entry in a snapshot sink, merged. An entry that does not parse is
/// reported and left out, so one bad row does not hide the fleet; an empty sink is an error.
fn read_sink(from: &str) -> Result<Snapshot, String> {
    // The URL may hold a password: messages name the sink by its description only.
    let target = SinkTarget::parse(from).map_err(|message| format!("the sink URL {message}"))?;
    let sink = Sink::open(target).map_err(|e| e.to_string())?;
    let runtime = runtime().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let entries = runtime
        .block_on(sink.fetch_all())
        .map_err(|e| e.to_string())?;
    let mut merged = Snapshot::new();
    let mut used = Vec::new();
    for entry in entries {
        match Snapshot::from_json(&entry.snapshot) {
            Ok(snapshot) => {
                merged.merge(&snapshot);
                used.push(entry.sidecar_id);
            }
            Err(error) => eprintln!(
                "indextap: left out sidecar {:?} of {}: {error}",
                entry.sidecar_id,
                sink.describe()
            ),
        }
    }
    if used.is_empty() {
        return Err(format!("{} holds no usable snapshot", sink.describe()));
    }
    eprintln!(
        "indextap: merged {} sidecar snapshot(s) from {}: {}",
        used.len(),
        sink.describe(),
        used.join(", ")
    );
    Ok(merged)
}

fn fail(message: String) -> ExitCode {
    eprintln!("indextap: {message}");
    ExitCode::FAILURE
}

/// `indextap recommend`.
pub fn recommend(args: RecommendArgs) -> ExitCode {
    let format: Format = match args.format.parse() {
        Ok(format) => format,
        Err(_) => return fail(format!("unknown format {:?}", args.format)),
    };
    let token = match args.token.token() {
        Ok(token) => token,
        Err(message) => return fail(message),
    };
    let (output, count) = if is_url(&args.from) {
        let json_url = api_url(&args.from, "/api/v1/recommendations?format=json");
        let json = match http_get(&json_url, token.as_deref()) {
            Ok(json) => json,
            Err(message) => return fail(message),
        };
        let count = serde_json::from_str::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| v["recommendations"].as_array().map(Vec::len))
            .unwrap_or(0);
        let output = if matches!(format, Format::Json) {
            json
        } else {
            let url = api_url(
                &args.from,
                &format!("/api/v1/recommendations?format={}", args.format),
            );
            match http_get(&url, token.as_deref()) {
                Ok(text) => text,
                Err(message) => return fail(message),
            }
        };
        (output, count)
    } else {
        let snapshot = match read_snapshot(&args.from, None) {
            Ok(snapshot) => snapshot,
            Err(message) => return fail(message),
        };
        let settings = match args.advice.settings() {
            Ok(settings) => settings,
            Err(message) => return fail(message),
        };
        let sources = CatalogSources {
            mongo_uri: args.mongo_admin_uri,
            pg_url: args.pg_admin_url,
            settings,
            baseline: Default::default(),
            statistics: Default::default(),
            plans: Default::default(),
        };
        let runtime = match runtime() {
            Ok(runtime) => runtime,
            Err(error) => return fail(format!("cannot start the runtime: {error}")),
        };
        let advice = runtime.block_on(crate::catalog::advise(&snapshot, &sources));
        (
            export::render(&advice, format),
            advice.recommendations.len(),
        )
    };
    print!("{output}");
    if !output.ends_with('\n') {
        println!();
    }
    if args.fail_on_recommendations && count > 0 {
        eprintln!("indextap: {count} recommendation(s)");
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

/// `indextap merge`.
pub fn merge(args: MergeArgs) -> ExitCode {
    let token = match args.token.token() {
        Ok(token) => token,
        Err(message) => return fail(message),
    };
    let mut merged = Snapshot::new();
    for input in &args.inputs {
        match read_snapshot(input, token.as_deref()) {
            Ok(snapshot) => merged.merge(&snapshot),
            Err(message) => return fail(message),
        }
    }
    let text = merged.to_json();
    match &args.output {
        Some(path) => {
            if let Err(error) = std::fs::write(path, text) {
                return fail(format!("cannot write {}: {error}", path.display()));
            }
        }
        None => println!("{text}"),
    }
    ExitCode::SUCCESS
}

/// `indextap shapes`.
pub fn shapes(args: ShapesArgs) -> ExitCode {
    use crate::admin::shapes::{self as pages, ShapesQuery, MAX_LIMIT};

    let token = match args.token.token() {
        Ok(token) => token,
        Err(message) => return fail(message),
    };
    let limit = if args.all {
        Some(MAX_LIMIT)
    } else {
        args.limit
    };
    let query = |offset| ShapesQuery::new(args.sort.clone(), args.order.clone(), limit, offset);
    let document = if is_url(&args.from) {
        let fetch = |offset| {
            let url = api_url(
                &args.from,
                &format!("/api/v1/shapes?{}", query(offset).to_query_string()),
            );
            http_get(&url, token.as_deref()).and_then(|text| {
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| format!("{url} did not answer JSON: {e}"))
            })
        };
        match fetch(args.offset) {
            Ok(first) if args.all => match all_pages(first, fetch) {
                Ok(document) => document,
                Err(message) => return fail(message),
            },
            Ok(document) => document,
            Err(message) => return fail(message),
        }
    } else {
        let snapshot = match read_snapshot(&args.from, None) {
            Ok(snapshot) => snapshot,
            Err(message) => return fail(message),
        };
        let mut request = match query(args.offset).page() {
            Ok(request) => request,
            Err(message) => return fail(message),
        };
        if args.all {
            request.limit = snapshot.shapes.len().max(1);
        }
        pages::snapshot_document(&snapshot, request)
    };
    match serde_json::to_string_pretty(&document) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(format!("cannot render shapes: {error}")),
    }
}

/// Follows `next_offset` from the first page, gathering every shape into one document.
fn all_pages(
    mut document: serde_json::Value,
    fetch: impl Fn(Option<usize>) -> Result<serde_json::Value, String>,
) -> Result<serde_json::Value, String> {
    while let Some(next) = document["next_offset"].as_u64() {
        let page = fetch(Some(usize::try_from(next).unwrap_or(usize::MAX)))?;
        let more = page["shapes"].as_array().cloned().unwrap_or_default();
        if more.is_empty() {
            break;
        }
        if let Some(shapes) = document["shapes"].as_array_mut() {
            shapes.extend(more);
        }
        document["next_offset"] = page["next_offset"].clone();
    }
    if let Some(object) = document.as_object_mut() {
        object.remove("next_offset");
        let gathered = object
            .get("shapes")
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len);
        object.insert("limit".into(), gathered.into());
    }
    Ok(document)
}
