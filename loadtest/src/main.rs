//! `lockstep-load`: drives viewers, anchors and buyers against a running server and
//! reports what it saw. `--procs K` splits a run over K worker processes (each its own
//! open-files budget and loopback source address) and merges their histograms.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lockstep_load::plot;
use lockstep_load::report::{Report, parse_worker_report};
use lockstep_load::scenario::{
    Slot, flash_sale, join_storm, link_drop, soak, subscribers, viewers,
};

#[derive(Parser)]
#[command(
    name = "lockstep-load",
    version,
    about = "Load generator for Lockstep rooms (and peers, for comparison)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Write the full report as JSON here.
    #[arg(long, global = true)]
    json: Option<std::path::PathBuf>,
    /// Draw an SVG plot here (latency over time, or the displayed-at offsets).
    #[arg(long, global = true)]
    plot: Option<std::path::PathBuf>,
    /// Worker processes to split the connections over (viewers, slow-viewers, join-storm).
    #[arg(long, global = true, default_value_t = 1)]
    procs: usize,
    /// Internal: this process is worker INDEX of the run.
    #[arg(long, hide = true, global = true)]
    worker: Option<usize>,
    /// Internal: the shared start time (Unix ms) of a multi-process run.
    #[arg(long, hide = true, global = true)]
    start_at: Option<u64>,
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// N viewers join a room; one publisher sends at a fixed rate; delivery latency and ratio.
    Viewers(viewers::ViewersArgs),
    /// Like `viewers`, with a fraction of viewers that stop reading (default 10%).
    SlowViewers(viewers::ViewersArgs),
    /// The anchor drops a link; arrival and displayed-at spread across N clients.
    LinkDrop(link_drop::LinkDropArgs),
    /// N buyers order at the reveal; checks no oversell and linearizability.
    FlashSale(flash_sale::FlashSaleArgs),
    /// Connections joined per second up to a target.
    JoinStorm(join_storm::JoinStormArgs),
    /// SFU capacity: one publisher, N WebRTC subscribers; loss and forwarding latency.
    Subscribers(subscribers::SubscribersArgs),
    /// Hours of churn: joins and leaves, comments, likes, orders with cancels and
    /// expiries, sales that end, WHEP players, slow and half-open clients.
    Soak(soak::SoakArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = real_main(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    anyhow::ensure!((1..=64).contains(&cli.procs), "--procs must be 1-64");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(index) = cli.worker {
        let slot = Slot {
            index,
            count: cli.procs,
            start_at_ms: cli.start_at.context("--start-at")?,
            progress: false,
        };
        let report = runtime.block_on(run_scenario(cli.scenario.clone(), slot))?;
        // The parent reads the last line of a worker's output.
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let lead = lead_time(&cli.scenario, cli.procs);
    let start_at_ms = lockstep_load::wire::now_ns() / 1_000_000 + lead.as_millis() as u64;
    let mut report = if cli.procs == 1 {
        let slot = Slot {
            index: 0,
            count: 1,
            start_at_ms,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        runtime.block_on(run_scenario(cli.scenario.clone(), slot))?
    } else {
        run_workers(cli.procs, start_at_ms)?
    };
    if matches!(
        cli.scenario,
        Scenario::Viewers(_) | Scenario::SlowViewers(_)
    ) {
        viewers::finish(&mut report);
    }
    print!("{}", report.table());
    std::io::stdout().flush()?;
    if let Some(path) = &cli.json {
        let mut json = report.to_json();
        json["raw"] = serde_json::to_value(&report)?;
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.plot {
        std::fs::write(path, plot::svg(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// How long joining takes before the measured traffic starts.
fn lead_time(scenario: &Scenario, procs: usize) -> Duration {
    match scenario {
        Scenario::Viewers(a) | Scenario::SlowViewers(a) => {
            Duration::from_secs_f64(a.viewers as f64 / f64::from(a.ramp.max(1)))
                + Duration::from_secs(2 + procs as u64 / 4)
        }
        _ => Duration::from_secs(1),
    }
}

async fn run_scenario(scenario: Scenario, slot: Slot) -> anyhow::Result<Report> {
    match scenario {
        Scenario::Viewers(a) => viewers::run(a, slot).await,
        Scenario::SlowViewers(mut a) => {
            if a.slow_fraction == 0.0 {
                a.slow_fraction = 0.1;
            }
            viewers::run(a, slot).await
        }
        Scenario::LinkDrop(a) => link_drop::run(a, slot).await,
        Scenario::FlashSale(a) => flash_sale::run(a, slot).await,
        Scenario::JoinStorm(a) => join_storm::run(a, slot).await,
        Scenario::Subscribers(a) => subscribers::run(a, slot).await,
        Scenario::Soak(a) => soak::run(a, slot).await,
    }
}

/// Re-runs this binary as `procs` workers with the same arguments and merges their reports.
fn run_workers(procs: usize, start_at_ms: u64) -> anyhow::Result<Report> {
    let exe = std::env::current_exe()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut children = Vec::new();
    for index in 0..procs {
        let child = std::process::Command::new(&exe)
            .args(&args)
            .arg("--worker")
            .arg(index.to_string())
            .arg("--start-at")
            .arg(start_at_ms.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting a worker process")?;
        children.push(child);
    }
    let mut merged: Option<Report> = None;
    for (index, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "worker {index} failed ({})",
            out.status
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().context("worker printed no report")?;
        let report = parse_worker_report(last)?;
        match merged.as_mut() {
            Some(m) => m.merge(&report),
            None => merged = Some(report),
        }
    }
    merged.context("no workers")
}
