//! causeway's lab: what measures causeway rather than runs it. Simulated
//! applications and faults, the Nezha fault data set converted to OTLP,
//! the evaluations (`eval nezha`, `eval simulate`, `eval bench`) and their
//! scoring, and the demo. Everything here drives the product through
//! [`causeway_app::Session`], the same wiring `serve` uses; only the
//! `causeway` command depends on this crate, never a serving crate.
//!
//! Entry points: one function per command ([`nezha`], [`simulate`],
//! [`demo`], [`eval_nezha`], [`eval_simulate`], [`eval_bench`]) and their
//! arguments.

use std::path::Path;
use std::process::ExitCode;

mod bench_eval;
mod demo;
mod nezha;
mod scoring;
mod sim_eval;
mod simulate;

pub use bench_eval::BenchArgs;
pub use demo::DemoArgs;
pub use nezha::NezhaCommand;
pub use sim_eval::SimEvalArgs;
pub use simulate::SimulateArgs;

/// `causeway nezha …`: the Nezha data set as OTLP.
pub fn nezha(command: NezhaCommand) -> ExitCode {
    nezha::run(command)
}

/// `causeway simulate`: simulated web-shop traffic with injected faults.
pub fn simulate(args: SimulateArgs) -> ExitCode {
    simulate::run(args)
}

/// `causeway demo`: a bad deploy through the whole pipeline, and its RCA.
pub fn demo(args: DemoArgs) -> ExitCode {
    demo::run(args)
}

/// `causeway eval nezha`: every case of a Nezha-format data set; prints
/// per case and totals (one JSON line with `json`).
pub fn eval_nezha(dir: &Path, json: bool, verbose: bool) -> anyhow::Result<()> {
    nezha::eval_nezha(dir, json, verbose).map(|_| ())
}

/// `causeway eval simulate`: every fault kind in every service of the
/// simulated web shop; whether every scenario ran.
pub fn eval_simulate(args: &SimEvalArgs) -> bool {
    sim_eval::eval_simulate(args)
}

/// `causeway eval bench`: random applications and faults, tune or test
/// seeds; whether every scenario ran.
pub fn eval_bench(args: &BenchArgs) -> bool {
    bench_eval::eval_bench(args)
}
