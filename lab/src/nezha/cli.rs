//! `causeway nezha convert DAY_DIR OUT_DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use prost::Message;
use serde::Serialize;

use super::{NezhaError, case_minutes, convert_minute, load_fault_list, minute_of};

/// Tools for the Nezha Train Ticket fault data set.
#[derive(Debug, clap::Subcommand)]
pub enum NezhaCommand {
    /// Convert a day directory (`.../2023-01-29`, or the baseline's
    /// `.../baseline/2023-01-29`) into one OTLP protobuf request per minute,
    /// `OUT_DIR/HH_MM.pb`, plus `OUT_DIR/cases.json` when the day has a
    /// fault list.
    Convert {
        /// The day directory, holding `trace/` and `log/`.
        day_dir: PathBuf,
        /// Where to write; created if missing.
        out_dir: PathBuf,
    },
}

/// Runs a `nezha` subcommand.
pub(crate) fn run(command: NezhaCommand) -> ExitCode {
    causeway_app::init_cli_logging();
    match command {
        NezhaCommand::Convert { day_dir, out_dir } => match convert_day(&day_dir, &out_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("causeway nezha convert: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// One entry of `cases.json`.
#[derive(Debug, Serialize)]
struct CaseOut<'a> {
    service: &'a str,
    kind: &'a str,
    inject_time: &'a str,
    inject_time_ns: i64,
    pod: &'a str,
    /// The case's minutes that have a span file, `HH_MM`.
    minutes: Vec<String>,
}

/// Converts every minute of `day_dir/trace/` into `out_dir/HH_MM.pb` and
/// writes `out_dir/cases.json` when the day has a fault list; one summary
/// line per minute on stderr.
pub(crate) fn convert_day(day_dir: &Path, out_dir: &Path) -> Result<(), NezhaError> {
    let trace_dir = day_dir.join("trace");
    let mut minutes: Vec<(String, PathBuf)> = std::fs::read_dir(&trace_dir)
        .map_err(|source| NezhaError::Io {
            path: trace_dir.clone(),
            source,
        })?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            Some((minute_of(&path)?.to_owned(), path))
        })
        .collect();
    minutes.sort();
    if minutes.is_empty() {
        return Err(NezhaError::Layout {
            path: trace_dir,
            message: "no HH_MM_trace.csv files".to_owned(),
        });
    }
    let fault_list = find_fault_list(day_dir)?;
    std::fs::create_dir_all(out_dir).map_err(|source| NezhaError::Io {
        path: out_dir.to_owned(),
        source,
    })?;

    let (mut spans, mut error_spans) = (0, 0);
    for (minute, trace) in &minutes {
        let log = day_dir.join("log").join(format!("{minute}_log.csv"));
        let log = log.is_file().then_some(log);
        let (request, s) = convert_minute(trace, log.as_deref())?;
        let out = out_dir.join(format!("{minute}.pb"));
        std::fs::write(&out, request.encode_to_vec())
            .map_err(|source| NezhaError::Io { path: out, source })?;
        spans += s.spans;
        error_spans += s.error_spans;
        eprintln!(
            "{minute}: {} spans in {} pods, {} error spans, {} exception events; skipped {} rows, {} duplicates, {} log rows; {}",
            s.spans,
            s.pods,
            s.error_spans,
            s.exception_events,
            s.skipped_rows,
            s.duplicate_rows,
            s.skipped_log_rows,
            if log.is_some() {
                format!(
                    "{} of {} ERROR lines unattached",
                    s.unattached_error_lines, s.error_lines
                )
            } else {
                "no log file".to_owned()
            }
        );
    }

    let mut case_note = String::from("no fault list");
    if let Some(list) = fault_list {
        let cases = load_fault_list(&list)?;
        let out: Vec<CaseOut<'_>> = cases
            .iter()
            .map(|c| CaseOut {
                service: &c.service,
                kind: &c.kind,
                inject_time: &c.inject_time,
                inject_time_ns: c.inject_time_ns,
                pod: &c.pod,
                minutes: case_minutes(day_dir, c)
                    .iter()
                    .filter_map(|(trace, _)| minute_of(trace).map(str::to_owned))
                    .collect(),
            })
            .collect();
        let path = out_dir.join("cases.json");
        let json = serde_json::to_vec_pretty(&out).map_err(|source| NezhaError::Json {
            path: path.clone(),
            line: 0,
            source,
        })?;
        std::fs::write(&path, json).map_err(|source| NezhaError::Io { path, source })?;
        case_note = format!("{} cases in cases.json", cases.len());
    }
    eprintln!(
        "wrote {} minutes, {spans} spans ({error_spans} with status ERROR) to {}; {case_note}",
        minutes.len(),
        out_dir.display()
    );
    Ok(())
}

/// The day's `*fault_list.json`, if any (the baseline has none).
pub(crate) fn find_fault_list(day_dir: &Path) -> Result<Option<PathBuf>, NezhaError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(day_dir)
        .map_err(|source| NezhaError::Io {
            path: day_dir.to_owned(),
            source,
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with("fault_list.json"))
        })
        .collect();
    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ => Err(NezhaError::Layout {
            path: day_dir.to_owned(),
            message: format!("several fault lists: {found:?}"),
        }),
    }
}
