//! Helpers shared by the cfwh test binaries.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cf_webhooks::aws::Budget;
use cfwh::dev::LineSink;

/// The `cfwh` binary under test.
pub const CFWH: &str = env!("CARGO_BIN_EXE_cfwh");

/// The moto_server `make test` starts, named in `CFWH_TEST_MOTO`.
pub fn moto() -> String {
    std::env::var("CFWH_TEST_MOTO")
        .expect("CFWH_TEST_MOTO names the moto_server these tests use; run them with `make test`, which starts it")
}

/// A DynamoDB client for `endpoint`, with the local test credentials and `budget`.
pub async fn dynamodb_at(endpoint: &str, budget: Budget) -> aws_sdk_dynamodb::Client {
    let sdk = cfwh::aws::local_sdk_config(budget).await;
    aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(endpoint).build())
}

/// A line sink that keeps every record line, parsed.
pub fn collecting_sink() -> (LineSink, Arc<Mutex<Vec<serde_json::Value>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink_lines = lines.clone();
    let sink: LineSink = Arc::new(move |batch: String| {
        let mut lines = sink_lines.lock().unwrap();
        lines.extend(batch.lines().map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()));
    });
    (sink, lines)
}

/// `cfwh dev` on a free port, its stdout lines on a channel.
pub struct DevProcess {
    pub child: Child,
    pub url: String,
    pub lines: mpsc::Receiver<String>,
}

impl DevProcess {
    pub fn start(secret: Option<&str>) -> Self {
        Self::start_with(secret, &[])
    }

    pub fn start_with(secret: Option<&str>, extra: &[&str]) -> Self {
        let mut command = Command::new(CFWH);
        command.args(["dev", "--addr", "127.0.0.1:0"]).args(extra).stdout(Stdio::piped()).stderr(Stdio::piped());
        command.env_remove("CF_WEBHOOK_SECRET").env("RUST_LOG", "warn");
        if let Some(secret) = secret {
            command.env("CF_WEBHOOK_SECRET", secret);
        }
        let mut child = command.spawn().unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("cfwh dev: listening on ") {
                    let _ = addr_tx.send(rest.split_whitespace().next().unwrap().to_owned());
                }
            }
        });
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let url = addr_rx.recv_timeout(Duration::from_secs(30)).expect("cfwh dev announces its address");
        Self { child, url, lines }
    }

    /// Lines printed: the first within `wait`, any more within a short grace after it.
    pub fn lines_within(&self, wait: Duration) -> Vec<serde_json::Value> {
        let mut lines = Vec::new();
        let mut timeout = wait;
        while let Ok(line) = self.lines.recv_timeout(timeout) {
            lines.push(serde_json::from_str(&line).unwrap_or_else(|_| panic!("stdout holds only JSON lines: {line}")));
            timeout = Duration::from_millis(200);
        }
        lines
    }

    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<serde_json::Value>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        let rest = self.lines.try_iter().map(|l| serde_json::from_str(&l).unwrap()).collect();
        (status, rest)
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
