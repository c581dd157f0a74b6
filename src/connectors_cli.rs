//! `causeway connectors …`: check credentials, sync once or on schedule,
//! seal a credential, rotate the seal key. None of these writes to a
//! source system; all of them use the data directory's signal store, so
//! run them while `serve` is stopped (DuckDB allows one writer).

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use causeway_connectors::{KnownServices, RetryPolicy, SealKey, Secret, SecretRef, SignalHub};
use causeway_model::TenantId;

use causeway_app::config::Config;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ConnectorsCommand {
    /// Check every source's credentials and read access (reads only).
    Check(Common),
    /// Sync every source into the signal store.
    Sync {
        #[command(flatten)]
        common: Common,
        /// One pass, then exit (default: every `connectors.interval`).
        #[arg(long)]
        once: bool,
    },
    /// Seal a credential read from stdin under `connectors.seal_key`, for
    /// `{ sealed: NAME }` references.
    Seal {
        #[command(flatten)]
        common: Common,
        /// Whose credential.
        #[arg(long)]
        tenant: String,
        /// Its name.
        #[arg(long)]
        name: String,
    },
    /// Re-seal every stored credential under a new key (then put the new
    /// key in `connectors.seal_key`).
    RotateKey {
        #[command(flatten)]
        common: Common,
        /// Environment variable holding the new key.
        #[arg(long, conflicts_with = "new_key_file")]
        new_key_env: Option<String>,
        /// File holding the new key.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct Common {
    /// Config file (YAML) with a `connectors:` section.
    #[arg(long, short, env = "CAUSEWAY_CONFIG")]
    config: PathBuf,
    /// Overrides storage.data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Service names from the stored catalog, read once (the server is not
/// running, so its database is free).
#[derive(Debug, Default)]
struct StoredCatalog(HashMap<TenantId, Vec<String>>);

#[async_trait::async_trait]
impl KnownServices for StoredCatalog {
    async fn services(&self, tenant: &TenantId) -> Vec<String> {
        self.0.get(tenant).cloned().unwrap_or_default()
    }
}

fn open(common: &Common) -> anyhow::Result<(Config, SignalHub, StoredCatalog)> {
    let mut config = Config::load(&common.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(d) = &common.data_dir {
        config.storage.data_dir = d.clone();
    }
    let problems = config.validate();
    if let Some(p) = problems.first() {
        anyhow::bail!("{}: {}: {}", common.config.display(), p.path, p.message);
    }
    let dir = &config.storage.data_dir;
    std::fs::create_dir_all(dir)?;
    let stores = causeway_app::stores::Stores::open(&config)?;
    let hub = stores
        .signals(&config)
        .and_then(|hub| Ok(hub.with_audit(stores.audit_sink()?)))
        .map_err(|e| {
            anyhow::anyhow!(
                "{e:#} (with DuckDB, is `causeway serve` running on this data directory?)"
            )
        })?;
    let mut catalog = StoredCatalog::default();
    // Services seen in stored spans (the series store's catalog), for
    // mapping changed paths to services.
    let rows = stores
        .series_reader()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .and_then(|s| match s {
            Some(s) => Ok(s.load_services()?),
            None => Ok(Vec::new()),
        });
    match rows {
        Ok(rows) => {
            for r in rows {
                catalog.0.entry(r.tenant).or_default().push(r.name);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "service catalog not read; only explicit mapping rules apply")
        }
    }
    Ok((config, hub, catalog))
}

fn read_stdin() -> anyhow::Result<Secret> {
    let mut v = String::new();
    std::io::stdin().read_to_string(&mut v)?;
    let v = v.trim();
    if v.is_empty() {
        anyhow::bail!("nothing on stdin");
    }
    Ok(Secret::new(v))
}

#[allow(clippy::print_stdout)]
pub(crate) fn run(command: ConnectorsCommand) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<bool> = rt.block_on(async move {
        match command {
            ConnectorsCommand::Check(common) => {
                let (config, hub, _) = open(&common)?;
                let (connectors, failed) = hub.connectors(RetryPolicy::default());
                let mut ok = failed.is_empty();
                for (name, e) in failed {
                    println!("{name}: NOT READY: {e}");
                }
                for (tenant, c) in &connectors {
                    let scopes = config
                        .connectors
                        .sources
                        .iter()
                        .find(|s| s.name == c.name() && s.tenant == tenant.as_str())
                        .map(|s| s.system.read_scopes())
                        .unwrap_or_default();
                    let checked = c.check().await;
                    hub.audit(
                        Some(tenant),
                        "connector.check",
                        checked.is_ok(),
                        format!("connector={}", c.name()),
                    );
                    match checked {
                        Ok(lines) => {
                            println!("{tenant}/{} ({}): ok", c.name(), c.system());
                            for l in lines {
                                println!("  {l}");
                            }
                        }
                        Err(e) => {
                            ok = false;
                            println!("{tenant}/{} ({}): FAILED: {e}", c.name(), c.system());
                            println!("  needs: {scopes}");
                        }
                    }
                }
                Ok(ok)
            }
            ConnectorsCommand::Sync { common, once } => {
                let (_, hub, catalog) = open(&common)?;
                if !once {
                    let hub = std::sync::Arc::new(hub);
                    let stop = tokio_util::sync::CancellationToken::new();
                    let task = tokio::spawn(hub.run(std::sync::Arc::new(catalog), stop.clone()));
                    let _ = tokio::signal::ctrl_c().await;
                    stop.cancel();
                    task.await?;
                    return Ok(true);
                }
                let (connectors, failed) = hub.connectors(RetryPolicy::default());
                let mut ok = failed.is_empty();
                for (name, e) in failed {
                    println!("{name}: NOT STARTED: {e}");
                }
                for (name, report) in hub.sync_once(&connectors, &catalog).await {
                    println!(
                        "{name}: {} page(s), {} record(s), {} new",
                        report.pages, report.records, report.new
                    );
                    for (stream, e) in &report.failed {
                        ok = false;
                        println!("  {stream}: FAILED: {e}");
                    }
                }
                Ok(ok)
            }
            ConnectorsCommand::Seal { common, tenant, name } => {
                let (_, hub, _) = open(&common)?;
                let tenant = TenantId::new(&tenant)?;
                hub.seal(&tenant, &name, &read_stdin()?).await?;
                println!("sealed {name} for {tenant}; refer to it as {{ sealed: {name} }}");
                Ok(true)
            }
            ConnectorsCommand::RotateKey {
                common,
                new_key_env,
                new_key_file,
            } => {
                let (_, hub, _) = open(&common)?;
                let r = match (new_key_env, new_key_file) {
                    (Some(v), None) => SecretRef::Env(v),
                    (None, Some(f)) => SecretRef::File(f),
                    _ => anyhow::bail!("give --new-key-env or --new-key-file"),
                };
                let new = SealKey::from_ref(&r)?;
                let n = hub.rotate(&new).await?;
                println!(
                    "re-sealed {n} credential(s) under key {}; set connectors.seal_key to the new key",
                    new.id()
                );
                Ok(true)
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("causeway connectors: {e:#}");
            ExitCode::FAILURE
        }
    }
}
