//! `causeway demo`: the first thing to run after `serve`. A simulated web
//! shop runs healthy for 20 minutes of event time, then a bad deploy of one
//! service ships (a new `service.version` whose calls fail with a new
//! exception); a deploy event and a customer ticket arrive as connectors
//! would store them, next to a decoy deploy of another service. Everything
//! goes through the same pipeline as `serve` (receiver payloads, processor,
//! detection, span store, correlator) in event time, so it takes a few
//! seconds (2 s for a debug build here), and the RCA of the incident is printed as Markdown.

use std::process::ExitCode;
use std::time::Duration;

use causeway_benches::{Fault, SimConfig};
use causeway_model::{Signal, SignalKind, TenantId};

/// `causeway demo` arguments.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The service that gets the bad deploy (a service of the simulated
    /// shop: frontend, checkout, cart, product-catalog, currency, payment,
    /// shipping, email, recommendation, ad).
    #[arg(long, default_value = "shipping")]
    service: String,
    /// PRNG seed of the traffic.
    #[arg(long, default_value_t = 5)]
    seed: u64,
    /// Print the report as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

/// Runs the demo.
#[allow(clippy::print_stdout)]
pub(crate) fn run(args: DemoArgs) -> ExitCode {
    match demo(&args) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("causeway demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A signal of the simulation's tenant as a connector would store it.
pub(crate) fn signal(
    source: &str,
    kind: SignalKind,
    id: &str,
    title: &str,
    at_ns: i64,
    services: &[&str],
) -> Signal {
    let tenant = TenantId::new("sim").unwrap_or_else(|_| unreachable!("a valid literal"));
    let mut s = Signal::new(&tenant, kind, source, id.to_owned(), at_ns);
    title.clone_into(&mut s.title);
    s.services = services.iter().map(|x| (*x).to_owned()).collect();
    s.url = Some(format!("https://example.test/{id}"));
    s
}

fn demo(args: &DemoArgs) -> anyhow::Result<String> {
    let start_ns = SimConfig::default().start_ns + 9 * 3_600_000_000_000;
    let fault = Fault::parse(&format!("bad-deploy:{}@20m", args.service), start_ns)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let at = i64::try_from(fault.start_ns)?;
    let minute = 60_000_000_000i64;
    let decoy = if args.service == "payment" {
        "cart"
    } else {
        "payment"
    };
    let signals = vec![
        signal(
            "demo",
            SignalKind::Deploy,
            "deploy-1842",
            &format!("Deploy {} 9.9.9-rc1", args.service),
            at - 2 * minute,
            &[&args.service],
        ),
        signal(
            "demo",
            SignalKind::Deploy,
            "deploy-1841",
            &format!("Deploy {decoy} 2.4.0"),
            at - 5 * minute,
            &[decoy],
        ),
        signal(
            "demo",
            SignalKind::Ticket,
            "SUP-311",
            &format!(
                "Checkout fails: {} errors with NullPointerException",
                args.service
            ),
            at + 4 * minute,
            &[],
        ),
    ];
    eprintln!(
        "causeway demo: simulating 26 minutes of a web shop; a bad deploy of {} at minute 20 …",
        args.service
    );
    let runs = crate::simulate::analysed_with(
        SimConfig {
            seed: args.seed,
            start_ns,
            duration: Duration::from_secs(26 * 60),
            rate: 10.0,
            faults: vec![fault],
            ..SimConfig::default()
        },
        &signals,
        &|_, _, _| {},
    )?;
    let Some((incident, _, rca)) = runs
        .iter()
        .find(|(i, _, _)| i.onset_ns >= at - 10_000_000_000)
    else {
        anyhow::bail!("no incident was detected after the bad deploy");
    };
    eprintln!(
        "causeway demo: incident {} opened; the injected fault was a bad deploy of {}\n",
        incident.id, args.service
    );
    if args.json {
        Ok(serde_json::to_string_pretty(rca)?)
    } else {
        Ok(causeway_correlator::report::markdown(rca))
    }
}
