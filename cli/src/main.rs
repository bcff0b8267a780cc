//! The `cfwh` command line: one module of the library per command.

use std::process::ExitCode;

use cfwh::{dev, drift, groups, listen, redrive, replay, schemas, send, sign, template, verify};
use clap::{Parser, Subcommand};

/// cf-webhooks on one machine: run the pipeline, and sign, verify and send events like
/// Creative Force.
#[derive(Parser)]
#[command(name = "cfwh", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run ingest, in-memory queues and all seven consumers in one process.
    ///
    /// Configuration comes from the same environment variables as the ingest Lambda
    /// (CF_WEBHOOK_SECRET, CF_MAX_BODY_BYTES, …). Without CF_WEBHOOK_SECRET a development
    /// secret is used and printed. One JSON line goes to stdout each time an attempt at a record ends;
    /// logs go to stderr. Ctrl-C or SIGTERM drains the queues, then exits.
    Dev(Box<dev::Args>),
    /// Print the X-CF-Signature of a file's exact bytes.
    Sign(sign::Args),
    /// Check a signature against a file; exits 0 when valid, 1 when not.
    Verify(verify::Args),
    /// POST files to a Payload URL as Creative Force does, retrying non-2xx answers.
    Send(send::Args),
    /// Run the handlers on this machine against a deployed stack's queues.
    ///
    /// For a development stack deployed with ConsumersEnabled=false: Creative Force
    /// delivers to its Function URL, and the records are applied here, with the stack's
    /// idempotency table, dead-letter queues and destinations. One JSON line each time an
    /// attempt at a record ends, as in `cfwh dev`. Ctrl-C stops after the batches in hand.
    Listen(listen::Args),
    /// Move a group's dead-letter queue back to its source queue.
    Redrive(redrive::Args),
    /// Send a group's archived events of a span again, verified, as one replay run.
    Replay(replay::Args),
    /// Sum up how archived events drift from what Creative Force documents: undocumented
    /// fields and actions, missing and retyped fields, quarantined deliveries.
    Drift(drift::Args),
    /// Write the SAM template (template.yaml) from the code's own definitions.
    Template(template::Args),
    /// Write the JSON Schemas of Creative Force's payloads (schemas/) from the baseline of
    /// what it documents (schemas/baseline/).
    Schemas(schemas::Args),
    /// List the event groups and routes with their queues and variables (--json for scripts).
    Groups(groups::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Dev(args) => dev_runtime().and_then(|rt| rt.block_on(dev::run(*args))),
        Command::Sign(args) => sign::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Send(args) => runtime().and_then(|rt| rt.block_on(send::run(args))),
        Command::Replay(args) => runtime().and_then(|rt| rt.block_on(replay::run(args))),
        Command::Listen(args) => runtime().and_then(|rt| rt.block_on(listen::run(args))),
        Command::Redrive(args) => runtime().and_then(|rt| rt.block_on(redrive::run(args))),
        Command::Drift(args) => runtime().and_then(|rt| rt.block_on(drift::run(args))),
        Command::Template(args) => template::run(args),
        Command::Schemas(args) => schemas::run(args),
        Command::Groups(args) => groups::run(args),
    };
    result.unwrap_or_else(|message| {
        eprintln!("cfwh: {message}");
        ExitCode::from(2)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

/// `cfwh dev`'s runtime: one worker thread more than the machine has cores, unless
/// `TOKIO_WORKER_THREADS` says otherwise. A worker holds short locks (the memory store, the
/// queues, stdout for a batch of record lines); on a machine whose cores are shared with
/// the sender (wrk, `cfwh send`, a browser), the kernel preempts a worker inside one and the
/// others wait on it; a spare worker keeps the pipeline going. The price list in
/// BENCHMARKS.md measures it against tokio's default of one per core.
fn dev_runtime() -> Result<tokio::runtime::Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        builder.worker_threads(cores + 1);
    }
    builder.enable_all().build().map_err(|e| e.to_string())
}
