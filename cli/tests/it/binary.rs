//! The `cfwh` binary as a studio engineer uses it: `cfwh dev` in one process, `cfwh send`
//! of the files in `events/`, `cfwh sign` and `cfwh verify`.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{DevProcess, CFWH};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn sample_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn send(url: &str, secret: Option<&str>, files: &[PathBuf], extra: &[&str]) -> (bool, String) {
    let mut command = Command::new(CFWH);
    command.args(["send", "--url", url, "--retry-delay", "10ms"]).args(extra).args(files);
    command.env_remove("CF_WEBHOOK_SECRET");
    if let Some(secret) = secret {
        command.env("CF_WEBHOOK_SECRET", secret);
    }
    let output = command.output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn every_sample_is_processed_once_a_forgery_is_refused_and_a_resend_is_a_duplicate() {
    samples_once_forgeries_refused_resends_duplicate(DevProcess::start(None));
}

#[test]
fn the_same_over_an_sqs_api() {
    let moto = std::env::var("CFWH_TEST_MOTO").expect("CFWH_TEST_MOTO names the moto_server `make test` starts");
    let prefix = format!("bin-{}", std::process::id());
    samples_once_forgeries_refused_resends_duplicate(DevProcess::start_with(
        None,
        &["--sqs-endpoint", &moto, "--queue-prefix", &prefix],
    ));
}

fn samples_once_forgeries_refused_resends_duplicate(dev: DevProcess) {
    for file in sample_files() {
        let (ok, out) = send(&dev.url, None, std::slice::from_ref(&file), &[]);
        assert!(ok, "{out}");
        let lines = dev.lines_within(Duration::from_secs(5));
        assert_eq!(lines.len(), 1, "{}: {lines:?}", file.display());
        assert_eq!(lines[0]["outcome"], "processed");
        let body: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(lines[0]["payload_id"], body["PayloadId"]);
        assert_eq!(lines[0]["action"], body["Action"]);

        let (ok, out) = send(&dev.url, Some("not-the-secret"), std::slice::from_ref(&file), &["--retries", "0"]);
        assert!(!ok);
        assert!(out.contains(": 401 "), "{out}");
        assert!(dev.lines_within(Duration::from_millis(300)).is_empty(), "a forgery prints nothing");

        let (ok, _) = send(&dev.url, None, std::slice::from_ref(&file), &[]);
        assert!(ok);
        let lines = dev.lines_within(Duration::from_secs(5));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["outcome"], "duplicate", "{}", file.display());
    }
    let (status, _) = dev.terminate();
    assert!(status.success());
}

#[test]
fn sigterm_drains_every_accepted_event_before_exit() {
    let dev = DevProcess::start(Some("s3cret,older"));
    let dir = tempdir();
    let files: Vec<PathBuf> = (0..60)
        .map(|i| {
            let path = dir.join(format!("e{i}.json"));
            let body = format!(
                r#"{{"PayloadId":"drain-{i}","EventGroupName":"{}","Action":"Created","EventDatetimeUtc":1}}"#,
                ["task", "job", "user"][i % 3]
            );
            std::fs::write(&path, body).unwrap();
            path
        })
        .collect();
    let (ok, out) = send(&dev.url, Some("older"), &files, &[]);
    assert!(ok, "{out}");
    let (status, rest) = dev.terminate();
    assert!(status.success(), "{status}");
    let processed: usize = rest.iter().filter(|l| l["outcome"] == "processed").count();
    assert_eq!(processed, 60);
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cfwh-test-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn dev_refuses_a_public_address_with_the_development_secret() {
    let output =
        Command::new(CFWH).args(["dev", "--addr", "0.0.0.0:0"]).env_remove("CF_WEBHOOK_SECRET").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("set CF_WEBHOOK_SECRET"));
}

#[test]
fn sign_and_verify_agree_with_openssl() {
    let dir = tempdir();
    let file = dir.join("body.json");
    std::fs::write(
        &file,
        br#"{"PayloadId":"c02f0f73-1706-4973-9a4d-38007d6685e9","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":1595204418000}"#,
    )
    .unwrap();
    // printf '%s' "$BODY" | openssl dgst -sha256 -hmac 'It is a secret to everybody'
    let expected = "50d6c0f356663c7bd69e32da58e342ae3287438fae12c297b8b0ddfafd3571ed";
    let out = Command::new(CFWH).args(["sign", "--secret", "It is a secret to everybody"]).arg(&file).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);

    let verify = |secret: &str, signature: &str| {
        Command::new(CFWH)
            .args(["verify", "--secret", secret, "--signature", signature])
            .arg(&file)
            .env_remove("CF_WEBHOOK_SECRET")
            .output()
            .unwrap()
    };
    assert_eq!(verify("It is a secret to everybody", expected).status.code(), Some(0));
    assert_eq!(verify("other,It is a secret to everybody", &expected.to_uppercase()).status.code(), Some(0));
    assert_eq!(verify("It is a secret to everybody!", expected).status.code(), Some(1));
    let malformed = verify("It is a secret to everybody", &expected[..63]);
    assert_eq!(malformed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("64 hex digits"));
}

#[test]
fn no_secret_signature_or_header_value_reaches_any_output_even_at_trace_level() {
    let dir = tempdir();
    let (stdout, stderr) = (dir.join("stdout"), dir.join("stderr"));
    let secret = "s3cr3t-NEVER-PRINTED";
    let header_value = "h3ad3r-NEVER-PRINTED";
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(CFWH)
        .args(["dev", "--addr", &format!("127.0.0.1:{port}")])
        .env("CF_WEBHOOK_SECRET", format!("{secret},older-{secret}"))
        .env("CF_REQUIRED_HEADER_NAME", "x-studio-token")
        .env("CF_REQUIRED_HEADER_VALUE", header_value)
        .env("RUST_LOG", "trace")
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "cfwh dev did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = std::fs::read(events_dir().join("task.json")).unwrap();
    let signature = cf_webhooks::signature::sign(
        &cf_webhooks::secret::Secret::from_text(secret, Default::default()).unwrap(),
        &body,
    );
    let header = format!("x-studio-token: {header_value}");
    // Accepted, wrong header, wrong secret, a malformed signature, and a quarantined body.
    let (ok, out) = send(&url, Some(secret), &[events_dir().join("task.json")], &["--header", &header]);
    assert!(ok, "{out}");
    send(
        &url,
        Some(secret),
        &[events_dir().join("job.json")],
        &["--header", "x-studio-token: wrong", "--retries", "0"],
    );
    send(&url, Some("guess"), &[events_dir().join("user.json")], &["--header", &header, "--retries", "0"]);
    send(&url, Some(secret), &[events_dir().join("reference/job.txt")], &["--header", &header]);
    Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-H",
            &format!("x-cf-signature: sha256={signature}"),
            "--data-binary",
            "@-",
            &url,
        ])
        .stdin(std::process::Stdio::null())
        .status()
        .ok();
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());

    let output = std::fs::read_to_string(&stdout).unwrap() + &std::fs::read_to_string(&stderr).unwrap();
    assert!(output.contains("TRACE") || output.contains("DEBUG"), "the run logged at trace level");
    assert!(output.contains("signature-mismatch"), "the forgery was logged");
    for needle in [secret, header_value, signature.as_str(), &signature.to_uppercase()] {
        assert!(!output.contains(needle), "{needle:?} appears in the output");
    }
}

/// Each forwarded request's `X-CF-Signature` and body.
type Forwarded = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A receiver standing for a studio's service, on its own thread: keeps each request's
/// `X-CF-Signature` and body, answers 200.
fn forward_receiver() -> (String, Forwarded) {
    let received = Forwarded::default();
    let kept = received.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
                let kept = kept.clone();
                async move {
                    let signature = headers["x-cf-signature"].to_str().unwrap().to_owned();
                    kept.lock().unwrap().push((signature, body.to_vec()));
                    "ok"
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}/cf", listener.local_addr().unwrap())).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (rx.recv().unwrap(), received)
}

#[test]
fn dev_forwards_and_archives_every_event_it_processes() {
    let (url, received) = forward_receiver();
    let archive = tempdir().join("archive");
    let archive_arg = archive.to_str().unwrap().to_owned();
    let dev = DevProcess::start_with(
        None,
        &["--forward-url", &url, "--forward-secret", "fw-secret", "--archive-dir", &archive_arg],
    );
    let files = sample_files();
    let (ok, out) = send(&dev.url, None, &files, &[]);
    assert!(ok, "{out}");
    let mut lines = Vec::new();
    while lines.len() < files.len() {
        let more = dev.lines_within(Duration::from_secs(5));
        assert!(!more.is_empty(), "{} of {} lines: {lines:?}", lines.len(), files.len());
        lines.extend(more);
    }
    for line in &lines {
        assert_eq!(line["outcome"], "processed", "{line}");
        assert_eq!(line["destinations"]["http"], "delivered", "{line}");
        assert_eq!(line["destinations"]["archive"], "archived", "{line}");
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), files.len(), "each event forwarded once");
    let forward = cf_webhooks::secret::SecretSet::parse_list("fw-secret", Default::default()).unwrap();
    let webhook = cf_webhooks::secret::SecretSet::parse_list(cf_webhooks::DEV_SECRET, Default::default()).unwrap();
    let mut forwarded_ids = Vec::new();
    for (signature, body) in &received {
        let signature = cf_webhooks::signature::Signature::parse(signature.as_bytes()).unwrap();
        assert!(signature.verify(&forward, body), "signed with the forward secret");
        assert!(!signature.verify(&webhook, body));
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        forwarded_ids.push(json["PayloadId"].as_str().unwrap().to_owned());
    }
    let mut sent_ids: Vec<String> = files
        .iter()
        .map(|f| {
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(f).unwrap()).unwrap()["PayloadId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    sent_ids.sort();
    forwarded_ids.sort();
    assert_eq!(forwarded_ids, sent_ids, "every event sent was forwarded");
    let archived = walk(&archive).into_iter().filter(|p| !p.to_string_lossy().ends_with(".meta.json")).count();
    assert_eq!(archived, files.len());
    let (status, _) = dev.terminate();
    assert!(status.success());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn dev_names_the_flag_of_a_bad_destination() {
    let output = Command::new(CFWH)
        .args(["dev", "--addr", "127.0.0.1:0", "--forward-url", "ftp://studio"])
        .env_remove("CF_WEBHOOK_SECRET")
        .env_remove("CF_FORWARD_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--forward-url: must start with https://"), "{stderr}");
}

#[test]
fn dev_refuses_a_plain_http_forward_to_another_machine_unless_allowed() {
    let dev = |extra: &[&str]| {
        let mut child = Command::new(CFWH)
            .args(["dev", "--addr", "127.0.0.1:0", "--forward-url", "http://studio.example/hooks"])
            .args(extra)
            .env_remove("CF_WEBHOOK_SECRET")
            .env("CF_FORWARD_SECRET", "forward-secret")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Refused at once, or listening: read stderr up to the first line that says which.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            seen.push_str(&line);
            if line.contains("listening on") || line.contains("cfwh:") {
                break;
            }
            line.clear();
        }
        let _ = child.kill();
        let _ = child.wait();
        seen
    };
    let refused = dev(&[]);
    assert!(refused.contains("--forward-url: is plain http://") && refused.contains("unencrypted"), "{refused}");
    let allowed = dev(&["--forward-allow-http"]);
    assert!(allowed.contains("listening on"), "{allowed}");
}

/// The status of a raw HTTP/1.1 request to `url` with this `Host`.
fn status_with_host(url: &str, method: &str, path: &str, host: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let body = "{}";
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn dev_on_loopback_answers_only_loopback_host_names_on_every_route_unless_allowed() {
    let dev = DevProcess::start_with(None, &["--allow-host", "tunnel.example"]);
    for (method, path) in [
        ("POST", "/"),
        ("POST", "/hooks/cf"),
        ("POST", "/_cfwh/replay"),
        ("GET", "/_cfwh/"),
        ("GET", "/_cfwh/api/deliveries"),
    ] {
        assert_eq!(status_with_host(&dev.url, method, path, "evil.example"), 403, "{method} {path}, rebinding");
        assert_eq!(status_with_host(&dev.url, method, path, "127.0.0.1.nip.io:3000"), 403, "{method} {path}");
    }
    // Loopback names and the allowed one reach ingest: an unsigned body is a 401 there,
    // not the Host refusal.
    for host in ["127.0.0.1", "localhost:3000", "tunnel.example"] {
        assert_eq!(status_with_host(&dev.url, "POST", "/", host), 401, "{host}");
        assert_eq!(status_with_host(&dev.url, "GET", "/_cfwh/api/deliveries", host), 200, "{host}");
    }
}

#[test]
fn allow_host_is_refused_off_loopback_and_must_be_a_name() {
    let run = |args: &[&str]| {
        let output = Command::new(CFWH)
            .arg("dev")
            .args(args)
            .env("CF_WEBHOOK_SECRET", "a-secret-of-thirty-two-characters")
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(
        run(&["--addr", "0.0.0.0:0", "--allow-host", "x.example"]).contains("--allow-host is for a loopback address")
    );
    assert!(run(&["--addr", "127.0.0.1:0", "--allow-host", "x.example:443"]).contains("without a port"));
}

/// A folder archive holding one task event, written by a `cfwh dev` with `--archive-dir`;
/// its path, and the path as an argument.
fn one_archived_task(name: &str) -> (PathBuf, String) {
    let archive = tempdir().join(name);
    let archive_arg = archive.to_str().unwrap().to_owned();
    let dev = DevProcess::start_with(None, &["--archive-dir", &archive_arg]);
    let (ok, out) = send(&dev.url, None, &[events_dir().join("task.json")], &[]);
    assert!(ok, "{out}");
    dev.lines_within(Duration::from_secs(5));
    (archive, archive_arg)
}

#[test]
fn replay_to_a_url_follows_no_redirect_and_gives_up_on_a_silent_server() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    let (_, archive_arg) = one_archived_task("replay-policy-archive");
    // Elsewhere: counts the connections it gets (it must get none).
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    let elsewhere_addr = elsewhere.local_addr().unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    // A server answering every request with a redirect to elsewhere.
    let redirecting = TcpListener::bind("127.0.0.1:0").unwrap();
    let redirecting_url = format!("http://{}", redirecting.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in redirecting.incoming().flatten() {
            let mut stream = stream;
            let mut buffer = [0u8; 65536];
            let _ = stream.read(&mut buffer);
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{elsewhere_addr}/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    // A server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().flatten().collect();
        drop(held);
    });
    let replay = |url: &str| {
        let started = std::time::Instant::now();
        let output = Command::new(CFWH)
            .args([
                "replay",
                "--dir",
                &archive_arg,
                "--url",
                url,
                "--group",
                "task",
                "--since",
                "1h",
                "--timeout",
                "1s",
            ])
            .env_remove("CF_WEBHOOK_SECRET")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text, started.elapsed())
    };
    let (ok, text, _) = replay(&redirecting_url);
    assert!(!ok, "{text}");
    assert!(text.contains("sent 0") && text.contains("failed 1"), "a redirect is not a sent event: {text}");
    assert!(
        text.contains("answered HTTP 307, a redirect to http://127.0.0.1:") && text.contains("not followed"),
        "{text}"
    );
    assert!(elsewhere.accept().is_err(), "the signed body went on to the host the redirect named");
    let (ok, text, took) = replay(&silent_url);
    assert!(!ok && text.contains("failed 1") && text.contains("no answer within 1000 ms"), "{text}");
    assert!(took < Duration::from_secs(8), "waited {took:?} on a silent server");
}

#[test]
fn replay_refuses_an_archived_object_over_the_body_limit_naming_it() {
    let (archive, archive_arg) = one_archived_task("replay-limit-archive");
    let kept = walk(&archive).into_iter().find(|p| !p.to_string_lossy().ends_with(".meta.json")).unwrap();
    let name = kept.file_name().unwrap().to_string_lossy().into_owned();
    let (ms, _) = name.split_once('-').unwrap();
    let big = kept.with_file_name(format!("{ms}-big.json"));
    std::fs::write(&big, vec![b' '; 300_000]).unwrap();
    let output = Command::new(CFWH)
        .args(["replay", "--dir", &archive_arg, "--group", "task", "--since", "1h", "--dry-run"])
        .env("CF_WEBHOOK_SECRET", cf_webhooks::DEV_SECRET)
        .env_remove("CF_MAX_BODY_BYTES")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("-big.json: 300000 bytes, over the body limit of 262144 (CF_MAX_BODY_BYTES)"), "{text}");
    assert!(text.contains("would send 1, refused 1"), "the authentic one still goes: {text}");
}

#[test]
fn a_local_archive_replays_into_a_running_dev_through_its_replay_endpoint() {
    let archive = tempdir().join("replay-archive");
    let archive_arg = archive.to_str().unwrap().to_owned();
    let dev = DevProcess::start_with(None, &["--archive-dir", &archive_arg]);
    let task = events_dir().join("task.json");
    let (ok, out) = send(&dev.url, None, std::slice::from_ref(&task), &[]);
    assert!(ok, "{out}");
    assert_eq!(dev.lines_within(Duration::from_secs(5))[0]["outcome"], "processed");
    // A body planted in the folder without the signature it would need.
    let kept = walk(&archive).into_iter().find(|p| !p.to_string_lossy().ends_with(".meta.json")).unwrap();
    let name = kept.file_name().unwrap().to_string_lossy().into_owned();
    let (ms, _) = name.split_once('-').unwrap();
    std::fs::write(kept.with_file_name(format!("{ms}-planted.json")), std::fs::read(&kept).unwrap()).unwrap();

    let replay = |run: &str| {
        Command::new(CFWH)
            .args([
                "replay",
                "--dir",
                &archive_arg,
                "--url",
                &dev.url,
                "--group",
                "task",
                "--since",
                "1h",
                "--run",
                run,
            ])
            .env_remove("CF_WEBHOOK_SECRET")
            .output()
            .unwrap()
    };
    let output = replay("local-1");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("sent 1, refused 1"), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let lines = dev.lines_within(Duration::from_secs(5));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "processed");
    assert_eq!(lines[0]["replay_run"], "local-1");
    replay("local-1");
    assert_eq!(dev.lines_within(Duration::from_secs(5))[0]["outcome"], "duplicate", "once per run");

    // A delivery of a run is held to the memory from the run's time, which `cfwh replay`
    // sends with each: one of a run older than the memory (7 days here) is refused as
    // expired, never applied again.
    let body = std::fs::read(&kept).unwrap();
    let signed = cf_webhooks::testkit::signature(cf_webhooks::DEV_SECRET, &body);
    let week_ago = cf_webhooks::ack::now_ms() - 8 * 24 * 3600 * 1000;
    let post_replayed_at = |at: String| {
        reqwest::blocking::Client::new()
            .post(format!("{}/_cfwh/replay", dev.url))
            .header("x-cf-replay", "old-run")
            .header("x-cf-replayed-at", at)
            .header("x-cf-signature", &signed)
            .body(body.clone())
            .send()
            .unwrap()
    };
    assert_eq!(post_replayed_at("yesterday".into()).status().as_u16(), 400, "a time, or nothing");
    assert_eq!(post_replayed_at(week_ago.to_string()).status().as_u16(), 202);
    let lines = dev.lines_within(Duration::from_secs(5));
    assert_eq!((lines[0]["outcome"].as_str(), lines[0]["replay_run"].as_str()), (Some("expired"), Some("old-run")));

    // No signature, no way in.
    let client = reqwest::blocking::Client::new();
    let unsigned = client
        .post(format!("{}/_cfwh/replay", dev.url))
        .header("x-cf-replay", "forged")
        .body(std::fs::read(&kept).unwrap())
        .send()
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let proxied = client
        .post(format!("{}/_cfwh/replay", dev.url))
        .header("x-cf-replay", "via-tunnel")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-cf-signature", cf_webhooks::testkit::signature(cf_webhooks::DEV_SECRET, b"{}"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(proxied.status().as_u16(), 403, "what came through a tunnel is not local");
    let (status, _) = dev.terminate();
    assert!(status.success());
}

/// Posts one task's progress events at `versions` to a `cfwh dev` with the development
/// secret, in that order.
fn post_progress(url: &str, task_id: &str, versions: &[(&str, i64)]) {
    let client = reqwest::blocking::Client::new();
    for (payload_id, at) in versions {
        let body = common::progress_event(task_id, payload_id, *at);
        let answer = client
            .post(url)
            .header("x-cf-signature", cf_webhooks::testkit::signature(cf_webhooks::DEV_SECRET, body.as_bytes()))
            .body(body)
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
    }
}

#[test]
fn a_replayed_span_reapplies_the_latest_event_of_each_facet_and_skips_the_older_as_stale() {
    let now = cf_webhooks::ack::now_ms();
    let versions = [("r-1", now - 3_000), ("r-2", now - 2_000), ("r-3", now - 1_000)];
    let archive = tempdir().join("ordered-archive");
    let archive_arg = archive.to_str().unwrap().to_owned();
    let replay = |url: &str, run: &str| {
        let output = Command::new(CFWH)
            .args(["replay", "--dir", &archive_arg, "--url", url, "--group", "task", "--since", "1h", "--run", run])
            .env_remove("CF_WEBHOOK_SECRET")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    let outcomes = |lines: &[serde_json::Value]| {
        let mut got: Vec<(String, String)> = lines
            .iter()
            .map(|l| (l["payload_id"].as_str().unwrap().to_owned(), l["outcome"].as_str().unwrap().to_owned()))
            .collect();
        got.sort();
        got
    };
    let pairs = |expected: &[(&str, &str)]| -> Vec<(String, String)> {
        expected.iter().map(|(p, o)| ((*p).to_owned(), (*o).to_owned())).collect()
    };

    for (ordering, expected) in [
        ("latest", [("r-1", "stale"), ("r-2", "stale"), ("r-3", "processed")]),
        ("all", [("r-1", "processed"), ("r-2", "processed"), ("r-3", "processed")]),
    ] {
        let dev = DevProcess::start_with(None, &["--fifo", "--ordering", ordering, "--archive-dir", &archive_arg]);
        post_progress(&dev.url, "t-replayed", &versions);
        let applied = dev.lines_within(Duration::from_secs(10));
        assert_eq!(outcomes(&applied), pairs(&[("r-1", "processed"), ("r-2", "processed"), ("r-3", "processed")]));
        replay(&dev.url, &format!("span-{ordering}"));
        let replayed = dev.lines_within(Duration::from_secs(10));
        assert!(replayed.iter().all(|l| l["replay_run"] == format!("span-{ordering}")), "{replayed:?}");
        assert_eq!(outcomes(&replayed), pairs(&expected), "{ordering}: {replayed:?}");
        let (status, _) = dev.terminate();
        assert!(status.success());
    }
}

#[test]
fn dev_warns_of_a_short_secret_without_quoting_it() {
    let mut child = Command::new(CFWH)
        .args(["dev", "--addr", "127.0.0.1:0"])
        .env("CF_WEBHOOK_SECRET", "hunter2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
        let listening = line.contains("listening on");
        seen.push(line);
        if listening {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let text = seen.join("\n");
    assert!(text.contains("webhook secret 1 of 1 is shorter than 16 bytes"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
