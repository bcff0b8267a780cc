//! `simulate`: the deterministic simulation of the consumer side.
//!
//! ```text
//! simulate --seconds 60                 as many seeds as fit in 60 s (make test)
//! simulate --seed 42 [--events 12] [--faults all|none|kind,kind]   replay one seed
//! simulate --list-faults                the kinds of fault
//! ```
//!
//! A broken invariant is shrunk to fewer events and fewer kinds of fault, and printed
//! with the command that replays it; the exit status is then 1.

use std::time::{Duration, Instant};

use cf_webhooks::simulation::{run, shrink, Config, Fault, Faults, Totals};

fn main() {
    match parse(std::env::args().skip(1).collect()) {
        Ok(Command::List) => {
            for fault in Fault::ALL {
                println!("{:<22} {}", fault.name(), fault.what());
            }
        }
        Ok(Command::One(config)) => std::process::exit(one(config)),
        Ok(Command::Many { seconds, start }) => std::process::exit(many(seconds, start)),
        Err(e) => {
            eprintln!("simulate: {e}");
            eprintln!("usage: simulate [--seconds N [--start SEED]] | [--seed S [--events N] [--faults LIST]] | --list-faults");
            std::process::exit(2);
        }
    }
}

enum Command {
    List,
    One(Config),
    Many { seconds: u64, start: u64 },
}

fn parse(args: Vec<String>) -> Result<Command, String> {
    let mut seconds = 60;
    let mut start = None;
    let mut seed = None;
    let mut events = None;
    let mut faults = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, text: String| {
            text.trim().parse::<u64>().map_err(|_| format!("{name}: not a number: {text:?}"))
        };
        match arg.as_str() {
            "--list-faults" => return Ok(Command::List),
            "--seconds" => seconds = number("--seconds", value("--seconds")?)?,
            "--start" => start = Some(number("--start", value("--start")?)?),
            "--seed" => seed = Some(number("--seed", value("--seed")?)?),
            "--events" => events = Some(number("--events", value("--events")?)? as usize),
            "--faults" => faults = Some(Faults::parse(&value("--faults")?)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(seed) = seed {
        let mut config = Config::new(seed);
        config.events = events.unwrap_or(config.events).max(1);
        config.faults = faults.unwrap_or(config.faults);
        return Ok(Command::One(config));
    }
    let start = start.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() * 1_000_003)
    });
    Ok(Command::Many { seconds, start })
}

fn one(config: Config) -> i32 {
    match run(config) {
        Ok(summary) => {
            println!("simulation: seed {} held every invariant: {summary:#?}", config.seed);
            0
        }
        Err(violation) => {
            println!(
                "simulation: seed {} broke {}: {} (at {} ms)",
                config.seed, violation.invariant, violation.detail, violation.at_ms
            );
            1
        }
    }
}

fn many(seconds: u64, start: u64) -> i32 {
    let began = Instant::now();
    let mut totals = Totals::default();
    let mut seed = start;
    while began.elapsed() < Duration::from_secs(seconds) {
        let config = Config::new(seed);
        match run(config) {
            Ok(summary) => totals.add(&summary),
            Err(violation) => {
                println!(
                    "simulation: seed {seed} broke {}: {} (at {} ms)",
                    violation.invariant, violation.detail, violation.at_ms
                );
                let (small, last) = shrink(config, &violation);
                println!(
                    "simulation: shrunk to {} events, faults {}: {}: {}",
                    small.events, small.faults, last.invariant, last.detail
                );
                println!("simulation: replay with: {}", small.command());
                return 1;
            }
        }
        seed = seed.wrapping_add(1);
    }
    let injected: Vec<String> = totals.injected.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
    let outcomes: Vec<String> = totals.outcomes.iter().map(|(word, n)| format!("{word} {n}")).collect();
    println!(
        "simulation: {} seeds ({} over FIFO queues, {} standard; {} of user events spelling UserId and UserID, {} of \
         task events) from seed {start} in {:.0} s, {} batches, {:.1} simulated days",
        totals.seeds,
        totals.fifo,
        totals.seeds - totals.fifo,
        totals.user,
        totals.seeds - totals.user,
        began.elapsed().as_secs_f64(),
        totals.batches,
        totals.simulated.as_secs_f64() / 86_400.0
    );
    println!("simulation: {} faults injected: {}", totals.faults(), injected.join(", "));
    println!("simulation: outcomes (per event): {}", outcomes.join(", "));
    println!(
        "simulation: 0 invariants broken; {} handler applications, {} of them in the one window (killed after the \
         handler returned, before any write recorded it), {} older-after-newer over standard queues, {} deliveries \
         repeated, {} waiting copies answered after their holder settled",
        totals.applications, totals.window, totals.standard_reorders, totals.repeated_deliveries, totals.answered_waits
    );
    0
}
