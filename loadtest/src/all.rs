//! `boardroom-loadtest all`: every scenario of issue #19 at the sizes, each on a fresh
//! server of its own, `--runs` times, as one Markdown table and one JSON file.
//!
//! Each scenario hands back a short list of key figures ([`Figure`]: the figure, its baseline
//! in the same run, their ratio, the CPU per unit of work); this module runs the scenarios,
//! takes the median of each figure over the runs (every run's value is kept in the JSON), and
//! renders the table. Each run also writes the scenario's own full JSON report and server log
//! under `<dir>/all/`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{CommandFactory, FromArgMatches};
use serde::Serialize;
use serde_json::json;

use crate::stats::{self, Figure};
use crate::target::TargetArgs;
use crate::{Cli, Scenario};

/// `all`.
#[derive(Debug, Clone, clap::Args)]
pub struct AllArgs {
    /// Run only these (comma-separated): boards-postgres, boards-sqlite (`boards` is both),
    /// fanout, connections, auth, login-flood, reconnect-storm.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Leave these out (same names as `--only`).
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Runs of each scenario; the table shows medians (the issue asks for at least 3).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,
    /// Small sizes that check the whole chain in a few minutes; not a measurement.
    #[arg(long)]
    pub quick: bool,
    /// More flags for one scenario, as NAME=FLAGS (`--with 'fanout=--subscribers 2000'`);
    /// they win over the sizes of the issue (or of `--quick`). Repeatable.
    #[arg(long = "with", value_name = "NAME=FLAGS")]
    pub with: Vec<String>,
}

/// One scenario of the plan: a subcommand on one backend, with its sizes.
struct Entry {
    name: &'static str,
    subcommand: &'static str,
    postgres: bool,
    /// The sizes.
    full: &'static [&'static str],
    /// `--quick`.
    quick: &'static [&'static str],
}

/// Every scenario `all` runs, in order.
const PLAN: [Entry; 7] = [
    Entry {
        name: "boards-postgres",
        subcommand: "boards",
        postgres: true,
        full: &[],
        quick: &["--secs", "2", "--writers", "8", "--boards", "8"],
    },
    Entry {
        name: "boards-sqlite",
        subcommand: "boards",
        postgres: false,
        full: &[],
        quick: &["--secs", "2", "--writers", "8", "--boards", "8"],
    },
    Entry {
        name: "fanout",
        subcommand: "fanout",
        postgres: false,
        full: &[
            "--subscribers",
            "10000",
            "--events",
            "200",
            "--rate",
            "10",
            "--saturate-secs",
            "5",
        ],
        quick: &["--subscribers", "200", "--events", "20", "--rate", "10", "--saturate-secs", "2"],
    },
    Entry {
        name: "connections",
        subcommand: "connections",
        postgres: false,
        full: &["--connections", "15000"],
        quick: &["--connections", "300", "--hold-secs", "3"],
    },
    Entry {
        name: "auth",
        subcommand: "auth",
        postgres: false,
        full: &[],
        quick: &[
            "--keys",
            "5",
            "--warm-requests",
            "200",
            "--login-clients",
            "4",
            "--login-secs",
            "2",
            "--baseline-secs",
            "2",
        ],
    },
    Entry {
        name: "login-flood",
        subcommand: "login-flood",
        postgres: false,
        full: &[],
        quick: &[
            "--subscribers",
            "200",
            "--phase-secs",
            "3",
            "--login-clients",
            "4",
            "--wrong-clients",
            "4",
            "--login-ip-limit",
            "3",
        ],
    },
    Entry {
        name: "reconnect-storm",
        subcommand: "reconnect-storm",
        postgres: false,
        full: &["--subscribers", "2000", "--events-while-away", "50"],
        quick: &["--subscribers", "100", "--events-while-away", "10"],
    },
];

/// Whether `entry` is chosen by `--only` and `--skip` (`boards` names both backends).
fn chosen(entry: &str, only: &[String], skip: &[String]) -> bool {
    let named = |list: &[String]| {
        list.iter().any(|n| n == entry || (n == "boards" && entry.starts_with("boards-")))
    };
    (only.is_empty() || named(only)) && !named(skip)
}

/// The scenario `subcommand` with the flags `flags` (a later flag wins over an earlier one).
fn parse_scenario(subcommand: &str, flags: &[String]) -> anyhow::Result<Scenario> {
    let argv = ["boardroom-loadtest".to_owned(), subcommand.to_owned()]
        .into_iter()
        .chain(flags.iter().cloned());
    let command = Cli::command()
        .args_override_self(true)
        .mut_subcommand(subcommand, |sub| sub.args_override_self(true));
    let matches = command
        .try_get_matches_from(argv)
        .with_context(|| format!("flags of {subcommand}: {}", flags.join(" ")))?;
    Ok(Cli::from_arg_matches(&matches)?.scenario)
}

/// The `--with` flags for `entry` (its own name, or `boards` for both boards entries), split
/// on whitespace.
fn extra_flags(entry: &Entry, with: &[String]) -> anyhow::Result<Vec<String>> {
    let mut flags = Vec::new();
    for item in with {
        let Some((name, rest)) = item.split_once('=') else {
            bail!("--with takes NAME=FLAGS, not {item}");
        };
        if PLAN.iter().all(|e| e.name != name) && name != "boards" {
            bail!("--with: no scenario {name} in the plan");
        }
        if name == entry.name || (name == "boards" && entry.subcommand == "boards") {
            flags.extend(rest.split_whitespace().map(str::to_owned));
        }
    }
    Ok(flags)
}

/// One figure of one scenario over every run: the medians, and each run's figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The plan's name of the scenario (`boards-postgres`).
    pub scenario: String,
    /// What the figure is.
    pub figure: String,
    /// Its unit.
    pub unit: String,
    /// Median over the runs.
    pub value: Option<f64>,
    /// What the baseline is.
    pub baseline_label: String,
    /// Median baseline.
    pub baseline: Option<f64>,
    /// Median of the runs' ratios (not the ratio of the medians).
    pub ratio: Option<f64>,
    /// The goal.
    pub goal: Option<String>,
    /// The unit of work the CPU figures are per.
    pub cpu_per: Option<String>,
    /// Median server µs per unit.
    pub server_us: Option<f64>,
    /// Median load-tool µs per unit.
    pub loadtest_us: Option<f64>,
    /// Median Postgres µs per unit.
    pub database_us: Option<f64>,
    /// Median µs per unit of other processes (pgbench's client; elsewhere a disturbance).
    pub other_us: Option<f64>,
    /// Median total µs per unit.
    pub total_us: Option<f64>,
    /// Every run's figure, in run order.
    pub runs: Vec<Figure>,
}

/// The median of the values present; the mean of the middle two for an even count.
pub fn median(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let mut present: Vec<f64> = values.into_iter().flatten().filter(|v| v.is_finite()).collect();
    if present.is_empty() {
        return None;
    }
    present.sort_by(f64::total_cmp);
    let mid = present.len() / 2;
    let value =
        if present.len() % 2 == 1 { present[mid] } else { (present[mid - 1] + present[mid]) / 2.0 };
    Some((value * 1000.0).round() / 1000.0)
}

/// Rows of `scenario` from each run's figures (runs that failed are left out): one row per
/// figure, in the order the first run gave them, matched across runs by name.
pub fn rows(scenario: &str, runs: &[Vec<Figure>]) -> Vec<Row> {
    let mut names: Vec<&str> = Vec::new();
    for figure in runs.iter().flatten() {
        if !names.contains(&figure.figure.as_str()) {
            names.push(&figure.figure);
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let of: Vec<Figure> = runs
                .iter()
                .filter_map(|run| run.iter().find(|f| f.figure == name))
                .cloned()
                .collect();
            let cpu = |part: fn(&stats::CpuPer) -> Option<f64>| {
                median(of.iter().map(|f| f.cpu.as_ref().and_then(part)))
            };
            let first = of.first()?;
            Some(Row {
                scenario: scenario.to_owned(),
                figure: name.to_owned(),
                unit: first.unit.clone(),
                value: median(of.iter().map(|f| f.value)),
                baseline_label: first.baseline_label.clone(),
                baseline: median(of.iter().map(|f| f.baseline)),
                ratio: median(of.iter().map(|f| f.ratio)),
                goal: first.goal.clone(),
                cpu_per: of.iter().find_map(|f| f.cpu.as_ref().map(|c| c.per.clone())),
                server_us: cpu(|c| c.server_us),
                loadtest_us: cpu(|c| c.loadtest_us),
                database_us: cpu(|c| c.database_us),
                other_us: cpu(|c| c.other_us),
                total_us: cpu(|c| c.total_us),
                runs: of.clone(),
            })
        })
        .collect()
}

/// A number for people: thousands separated, fewer decimals the larger it is.
pub fn number(value: f64) -> String {
    let decimals = match value.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    let text = format!("{value:.decimals$}");
    let (sign, text) = text.strip_prefix('-').map_or(("", text.as_str()), |t| ("-", t));
    let (int, frac) = text.split_once('.').map_or((text, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, digit) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match frac {
        Some(frac) => format!("{sign}{grouped}.{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A value with its unit, or `-`.
fn with_unit(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "-".into(),
        // Counts: no decimals.
        Some(v) if unit.is_empty() && v.fract() == 0.0 => number(v).replace(".00", ""),
        Some(v) if unit.is_empty() => number(v),
        Some(v) if unit.starts_with('/') => format!("{}{unit}", number(v)),
        Some(v) => format!("{} {unit}", number(v)),
    }
}

/// Every run's ratio (for a figure without one, its value), in run order: a goal such as
/// "in five runs in a row" is read off the row, not only the median.
fn each_run(row: &Row) -> String {
    let shown: Vec<String> = row
        .runs
        .iter()
        .map(|run| match row.ratio {
            Some(_) => run.ratio.map_or_else(|| "?".into(), |r| format!("{r:.2}×")),
            None => with_unit(run.value, &row.unit),
        })
        .collect();
    shown.join(", ")
}

/// The Markdown table of `rows`; with more than one run, each run's ratio or value too.
pub fn markdown(rows: &[Row], runs: u32) -> String {
    let several = runs > 1;
    let (each_head, each_rule) = if several { (" each run |", "---|") } else { ("", "") };
    let mut out = format!(
        "| scenario | figure | value | baseline | ratio |{each_head} goal | CPU per | server µs | tool µs | Postgres µs | other µs | total µs |\n\
         |---|---|---|---|---|{each_rule}---|---|---|---|---|---|---|\n",
    );
    let us = |v: Option<f64>| v.map(number).unwrap_or_else(|| "-".into());
    for row in rows {
        let baseline = match row.baseline {
            Some(_) => format!("{} ({})", with_unit(row.baseline, &row.unit), row.baseline_label),
            None if row.baseline_label.is_empty() => "-".into(),
            None => format!("? ({})", row.baseline_label),
        };
        let each = if several { format!(" {} |", each_run(row)) } else { String::new() };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |{each} {} | {} | {} | {} | {} | {} | {} |\n",
            row.scenario,
            row.figure,
            with_unit(row.value, &row.unit),
            baseline,
            row.ratio.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "-".into()),
            row.goal.as_deref().unwrap_or("-"),
            row.cpu_per.as_deref().unwrap_or("-"),
            us(row.server_us),
            us(row.loadtest_us),
            us(row.database_us),
            us(row.other_us),
            us(row.total_us),
        ));
    }
    if several {
        out.push_str(&format!(
            "\nEach figure is the median of {runs} runs (ratios: the median of each run's ratio); \
             \"each run\" lists every run's ratio (or value) in run order, and the JSON keeps every run's figures.\n"
        ));
    }
    out
}

/// A scenario run that failed.
#[derive(Debug, Serialize)]
struct Failure {
    scenario: String,
    run: u32,
    error: String,
}

/// Runs the plan and writes `all.md` and `all.json` (at `json`, default
/// `target/loadtest/all.json`, the Markdown beside it).
pub async fn run(args: &AllArgs, target: &TargetArgs, json: Option<PathBuf>) -> anyhow::Result<()> {
    if target.url.is_some() {
        bail!("all starts a fresh server for each scenario; it does not take --url");
    }
    for name in args.only.iter().chain(&args.skip) {
        if name != "boards" && PLAN.iter().all(|e| e.name != name) {
            bail!("no scenario {name} in the plan (see --help)");
        }
    }
    let json_path = json.unwrap_or_else(|| PathBuf::from("target/loadtest/all.json"));
    let md_path = json_path.with_extension("md");
    let dir = json_path.parent().unwrap_or(Path::new(".")).join("all");
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    // Every scenario is parsed before any runs, so a bad flag fails at once.
    let mut plan = Vec::new();
    for entry in PLAN.iter().filter(|e| chosen(e.name, &args.only, &args.skip)) {
        if entry.postgres && target.database_url.is_none() {
            eprintln!("all: {} skipped (no --database-url)", entry.name);
            continue;
        }
        let sizes = if args.quick { entry.quick } else { entry.full };
        let mut flags: Vec<String> = sizes.iter().map(|f| (*f).to_owned()).collect();
        flags.extend(extra_flags(entry, &args.with)?);
        let scenario = parse_scenario(entry.subcommand, &flags)?;
        plan.push((entry, flags, scenario));
    }
    if plan.is_empty() {
        bail!("no scenario left to run");
    }

    let mut rows_all = Vec::new();
    let mut failures = Vec::new();
    let mut reports = Vec::new();
    for (entry, flags, scenario) in &plan {
        let mut figures = Vec::new();
        for run in 1..=args.runs {
            eprintln!(
                "\nall: {} (run {run} of {}): {} {}",
                entry.name,
                args.runs,
                entry.subcommand,
                flags.join(" ")
            );
            let mut target = target.clone();
            if !entry.postgres {
                target.database_url = None;
            }
            target.server_env = scenario.server_env();
            let path = dir.join(format!("{}-{run}.json", entry.name));
            match crate::run_one(scenario, &target, &path).await {
                Ok(report) => {
                    figures.push(report.figures);
                    reports.push(json!({
                        "scenario": entry.name, "run": run, "json": path.display().to_string(),
                        "warnings": report.warnings,
                    }));
                }
                Err(err) => {
                    eprintln!("all: {} run {run} failed: {err:#}", entry.name);
                    failures.push(Failure {
                        scenario: entry.name.to_owned(),
                        run,
                        error: format!("{err:#}"),
                    });
                }
            }
        }
        rows_all.extend(rows(entry.name, &figures));
    }

    let mut md = format!(
        "# boardroom-loadtest all\n\n{started_at}, {} cores, {} run(s) per scenario{}.\n\n",
        crate::machine::cores(),
        args.runs,
        if args.quick { ", --quick sizes (a check of the chain, not a measurement)" } else { "" },
    );
    md.push_str(&markdown(&rows_all, args.runs));
    if !failures.is_empty() {
        md.push_str("\nFailed:\n\n");
        for f in &failures {
            md.push_str(&format!(
                "- {} run {}: {}\n",
                f.scenario,
                f.run,
                f.error.replace('\n', " ")
            ));
        }
    }
    let report = json!({
        "started_at": started_at,
        "finished_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "cores": crate::machine::cores(),
        "loadtest_release_build": !cfg!(debug_assertions),
        "parameters": {
            "runs": args.runs,
            "quick": args.quick,
            "only": args.only,
            "skip": args.skip,
            "with": args.with,
            "postgres": target.database_url.is_some(),
            "scenarios": plan.iter().map(|(e, flags, _)| json!({
                "name": e.name, "subcommand": e.subcommand, "backend": if e.postgres { "postgres" } else { "sqlite" }, "flags": flags,
            })).collect::<Vec<_>>(),
        },
        "rows": rows_all,
        "failures": failures,
        "runs": reports,
    });
    stats::write_json(&json_path, &report)?;
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    println!("\n{md}");
    println!("JSON: {}\nMarkdown: {}", json_path.display(), md_path.display());
    if !failures.is_empty() {
        bail!("{} scenario run(s) failed", failures.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::CpuPer;

    fn figure(name: &str, value: f64, baseline: f64, server_us: f64) -> Figure {
        Figure::beside(name, "ms", Some(value), "bare baseline", Some(baseline)).cpu(Some(CpuPer {
            per: "delivery".into(),
            server_us: Some(server_us),
            loadtest_us: Some(1.0),
            database_us: None,
            other_us: Some(0.0),
            total_us: Some(server_us + 1.0),
        }))
    }

    #[test]
    fn median_of_odd_even_and_missing() {
        assert_eq!(median([Some(3.0), Some(1.0), Some(2.0)]), Some(2.0));
        assert_eq!(median([Some(4.0), Some(1.0), Some(2.0), Some(3.0)]), Some(2.5));
        assert_eq!(median([None, Some(7.0), None]), Some(7.0));
        assert_eq!(median([None, None]), None);
        assert_eq!(median(Vec::<Option<f64>>::new()), None);
        assert_eq!(median([Some(f64::NAN), Some(1.0)]), Some(1.0));
    }

    #[test]
    fn rows_take_medians_and_keep_every_run() {
        let runs = vec![
            vec![figure("p99", 100.0, 50.0, 4.0), Figure::alone("lost", "", Some(0.0))],
            vec![figure("p99", 300.0, 100.0, 2.0)],
            vec![figure("p99", 200.0, 200.0, 3.0), Figure::alone("lost", "", Some(2.0))],
        ];
        let rows = rows("fanout", &runs);
        assert_eq!(rows.len(), 2);
        let p99 = &rows[0];
        assert_eq!((p99.value, p99.baseline), (Some(200.0), Some(100.0)));
        // Ratios 2.0, 3.0, 1.0: the median of the ratios, not 200 / 100.
        assert_eq!(p99.ratio, Some(2.0));
        assert_eq!((p99.server_us, p99.total_us), (Some(3.0), Some(4.0)));
        assert_eq!(p99.database_us, None);
        assert_eq!(p99.runs.len(), 3);
        assert_eq!(rows[1].value, Some(1.0));
        assert_eq!(rows[1].runs.len(), 2);
    }

    #[test]
    fn numbers_and_the_markdown_table() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(423.46), "423");
        assert_eq!(number(12.63), "12.6");
        assert_eq!(number(4.704), "4.70");
        assert_eq!(number(-1500.0), "-1,500");
        assert_eq!(with_unit(Some(8293.0), "/s"), "8,293/s");
        assert_eq!(with_unit(None, "ms"), "-");
        assert_eq!(with_unit(Some(0.0), ""), "0");
        assert_eq!(with_unit(Some(15_000.0), ""), "15,000");
        assert_eq!(with_unit(Some(0.5), ""), "0.50");
        let rows = rows("fanout", &[vec![figure("paced p99", 423.5, 194.7, 4.7)]]);
        let table = markdown(&rows, 1);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("| scenario | figure | value | baseline | ratio"));
        assert_eq!(
            lines[2],
            "| fanout | paced p99 | 424 ms | 195 ms (bare baseline) | 2.18× | - | delivery | 4.70 | 1.00 | - | 0.00 | 5.70 |"
        );
        assert!(markdown(&rows, 3).contains("median of 3 runs"));
        // Several runs: every run's ratio, or value where there is no baseline, in run order.
        let runs = vec![
            vec![figure("p99", 100.0, 50.0, 4.0), Figure::alone("lost", "", Some(0.0))],
            vec![figure("p99", 300.0, 100.0, 2.0), Figure::alone("lost", "", Some(3.0))],
        ];
        let table = markdown(&super::rows("fanout", &runs), 2);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0]
            .starts_with("| scenario | figure | value | baseline | ratio | each run | goal"));
        assert_eq!(lines[1].matches("---").count(), 13, "{table}");
        assert!(
            lines[2].starts_with(
                "| fanout | p99 | 200 ms | 75.0 ms (bare baseline) | 2.50× | 2.00×, 3.00× | -"
            ),
            "{table}"
        );
        assert!(lines[3].starts_with("| fanout | lost | 1.50 | - | - | 0, 3 | -"), "{table}");
    }

    #[test]
    fn choosing_and_parsing_the_plan() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(chosen("fanout", &[], &[]));
        assert!(chosen("boards-sqlite", &s(&["boards"]), &[]));
        assert!(!chosen("boards-postgres", &[], &s(&["boards"])));
        assert!(!chosen("auth", &s(&["fanout", "connections"]), &[]));
        assert!(!chosen("fanout", &s(&["fanout"]), &s(&["fanout"])));
        // Every entry's sizes parse, and a later flag wins over the plan's.
        for entry in &PLAN {
            for sizes in [entry.full, entry.quick] {
                let flags = s(sizes);
                assert!(parse_scenario(entry.subcommand, &flags).is_ok(), "{}", entry.name);
            }
        }
        let flags = s(&["--subscribers", "10000", "--subscribers", "50"]);
        let Ok(Scenario::Fanout(args)) = parse_scenario("fanout", &flags) else { panic!() };
        assert!(format!("{args:?}").contains("subscribers: 50"), "{args:?}");
        let with = s(&["fanout=--events 5", "boards=--secs 1"]);
        assert_eq!(extra_flags(&PLAN[2], &with).unwrap(), s(&["--events", "5"]));
        assert_eq!(extra_flags(&PLAN[0], &with).unwrap(), s(&["--secs", "1"]));
        assert!(extra_flags(&PLAN[0], &s(&["nope=--x"])).is_err());
        assert!(parse_scenario("fanout", &s(&["--no-such-flag"])).is_err());
    }
}
