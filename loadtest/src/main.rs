//! castbrick-load: a load generator for CastBrick Push (and nginx+nchan, for comparison) that
//! speaks only HTTP to the server, like any client.
//!
//! # Layout
//! - `cli`: the scenarios and their options, and the bounds no run may exceed.
//! - `coordinator`: the parent process: splits streams over workers, ramps, publishes, merges.
//! - `worker`: a child process (`--worker`) holding thousands of streams on one thread.
//! - `publish`: keep-alive publishers that log each event's start and acknowledgement.
//! - `target`: castbrick vs nchan requests, the loopback-only check, the event data format.
//! - `http`, `sse`: a small HTTP/1.1 client side and an incremental SSE parser.
//! - `seqset`: per-stream received sequence numbers, for exact loss and duplicate counts.
//! - `procstat`: server RSS/CPU from /proc, own CPU from getrusage, the open-file limit.
//! - `report`: the table, the `RESULT {json}` line, and compare.sh's side-by-side table.

mod cli;
mod coordinator;
mod http;
mod procstat;
mod proto;
mod publish;
mod report;
mod seqset;
mod sse;
mod target;
mod worker;

use clap::Parser as _;

use cli::{Cli, Command};
use coordinator::Scenario;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--worker") {
        worker::main();
    }
    let cli = Cli::parse();
    let (common, scenario) = match cli.command {
        Command::CompareTable(c) => match report::compare_table(&c.files) {
            Ok(t) => {
                print!("{t}");
                return;
            }
            Err(e) => {
                eprintln!("castbrick-load: {e}");
                std::process::exit(2);
            }
        },
        Command::Idle(a) => (a.common, Ok(Scenario::Idle)),
        Command::Broadcast(a) => {
            let check = cli::check_events(a.events)
                .and_then(|_| a.rate.map_or(Ok(()), |r| cli::check_rate(r, "--rate")))
                .and_then(|_| check_publishers(a.publishers));
            (
                a.common,
                check.map(|_| Scenario::Broadcast {
                    events: a.events,
                    rate: a.rate,
                    publishers: a.publishers,
                }),
            )
        }
        Command::Fanout(a) => (
            a.common,
            check_publishers(a.publishers).map(|_| Scenario::Fanout {
                publishers: a.publishers,
            }),
        ),
        Command::Churn(a) => {
            let check = cli::check_rate(a.rate, "--rate")
                .and_then(|_| cli::check_rate(a.churn_rate, "--churn-rate"));
            (
                a.common,
                check.map(|_| Scenario::Churn {
                    churn_rate: a.churn_rate,
                    rate: a.rate,
                }),
            )
        }
        Command::Resume(a) => {
            let check = cli::check_rate(a.rate, "--rate").and_then(|_| {
                if a.drop_every > 0.0 && a.resumers <= a.common.streams {
                    Ok(())
                } else {
                    Err("--resumers must be at most --streams and --drop-every positive".into())
                }
            });
            (
                a.common,
                check.map(|_| Scenario::Resume {
                    resumers: a.resumers,
                    drop_every: a.drop_every,
                    offline_ms: a.offline_ms,
                    rate: a.rate,
                }),
            )
        }
    };
    let scenario = match scenario.and_then(|s| common.validate().map(|_| s)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("castbrick-load: {e}");
            std::process::exit(2);
        }
    };
    let nofile = procstat::raise_nofile();
    if nofile < 1_024 {
        eprintln!("castbrick-load: only {nofile} open files allowed; workers will fail early");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("castbrick-load: runtime: {e}");
            std::process::exit(2);
        }
    };
    let result = rt.block_on(coordinator::run(common, scenario));
    // Workers are already reaped or killed; do not wait on stray blocking tasks (stdin readers).
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(report) => {
            print!("{}", report.table());
            println!(
                "RESULT {}",
                serde_json::to_string(&report).expect("serialisable")
            );
            std::process::exit(if report.ok { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("castbrick-load: {e}");
            std::process::exit(3);
        }
    }
}

fn check_publishers(p: usize) -> Result<(), String> {
    if (1..=1_024).contains(&p) {
        Ok(())
    } else {
        Err("--publishers must be 1..=1024".into())
    }
}
