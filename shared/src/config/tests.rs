//! The configuration against its contract: defaults, bounds, and errors that name the
//! variable and never quote a secret.

use super::*;
use std::collections::HashMap;

/// A consumer's configuration from `base` and then `extra` variables.
fn consumer(base: &[(&str, &str)], extra: &[(&str, &str)]) -> Result<ConsumerConfig, ConfigError> {
    let map: HashMap<String, String> = base.iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ConsumerConfig::from_lookup(move |name| map.get(name).cloned())
}

fn config(vars: &[(&str, &str)]) -> Result<IngestConfig, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    IngestConfig::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn defaults() {
    let c = config(&[("CF_WEBHOOK_SECRET", "s")]).unwrap();
    assert_eq!(c.max_body_bytes, 256 * 1024);
    assert!(c.required_header.is_none() && c.secret_store.is_none());
    assert_eq!(
        c.replay_window,
        Some(ReplayWindow { max_age: DEFAULT_MAX_EVENT_AGE, max_future: DEFAULT_MAX_CLOCK_SKEW })
    );
    assert!(config(&[("CF_WEBHOOK_SECRET", "s"), ("CF_MAX_EVENT_AGE_SECS", "0")]).unwrap().replay_window.is_none());
    assert_eq!(c.filters, Filters::default());
    assert_eq!(c.enqueue_timeout, DEFAULT_ENQUEUE_TIMEOUT);
}

#[test]
fn empty_values_are_unset() {
    // The SAM template passes every optional setting, empty when unused.
    let c = config(&[
        ("CF_WEBHOOK_SECRET", "s"),
        ("CF_REQUIRED_HEADER_NAME", ""),
        ("CF_REQUIRED_HEADER_VALUE", ""),
        ("CF_FILTER_WORKSPACES", ""),
        ("CF_FILTER_EVENT_GROUPS", ""),
        ("CF_FILTER_STEPS", ""),
    ])
    .unwrap();
    assert!(c.required_header.is_none());
    assert_eq!(c.filters, Filters::default());
}

#[test]
fn every_setting() {
    let c = config(&[
        ("CF_WEBHOOK_SECRET", "czE=,czI="),
        ("CF_SECRET_ENCODING", "base64"),
        ("CF_MAX_BODY_BYTES", "65536"),
        ("CF_REQUIRED_HEADER_NAME", "X-Studio-Token"),
        ("CF_REQUIRED_HEADER_VALUE", "t0ken"),
        ("CF_MAX_EVENT_AGE_SECS", "3600"),
        ("CF_MAX_CLOCK_SKEW_SECS", "60"),
        ("CF_FILTER_WORKSPACES", "AAA, bbb"),
        ("CF_FILTER_EVENT_GROUPS", "task,work unit"),
        ("CF_FILTER_STEPS", "Photography, Post Review"),
        ("CF_ENQUEUE_TIMEOUT_MS", "800"),
    ])
    .unwrap();
    assert_eq!(c.secrets.len(), 2);
    assert_eq!(c.max_body_bytes, 65536);
    let header = c.required_header.as_ref().unwrap();
    assert_eq!(header.name, "x-studio-token");
    assert!(header.matches(b"t0ken") && !header.matches(b"t0ken ") && !header.matches(b""));
    assert_eq!(
        c.replay_window,
        Some(ReplayWindow { max_age: Duration::from_secs(3600), max_future: Duration::from_secs(60) })
    );
    assert_eq!(c.filters.workspaces, ["aaa", "bbb"]);
    assert_eq!(c.filters.groups, [EventGroup::Task, EventGroup::WorkUnit]);
    assert_eq!(c.filters.steps, ["photography", "postreview"]);
    assert_eq!(c.enqueue_timeout, Duration::from_millis(800));
    let shown = format!("{c:?}");
    assert!(!shown.contains("t0ken") && !shown.contains("czE"), "{shown}");
}

#[test]
fn the_required_header_value_may_come_from_secrets_manager() {
    let c = config(&[
        ("CF_WEBHOOK_SECRET", "s"),
        ("CF_REQUIRED_HEADER_NAME", "X-Studio-Token"),
        ("CF_REQUIRED_HEADER_VALUE_ARN", " arn:aws:secretsmanager:eu-west-1:1:secret:header "),
    ])
    .unwrap();
    let unread = c.required_header.unwrap();
    assert!(!unread.matches(b"") && !unread.matches(b"anything"), "fails closed until the value is read");
    let store = c.required_header_store.unwrap();
    assert_eq!(
        (store.name.as_str(), store.arn.as_str()),
        ("x-studio-token", "arn:aws:secretsmanager:eu-west-1:1:secret:header")
    );
}

#[test]
fn consumer_settings_and_the_ttl_outlives_the_replay_window() {
    let vars = |extra: &[(&'static str, &'static str)]| {
        consumer(
            &[("CF_EVENT_GROUP", "work unit"), ("CF_IDEMPOTENCY_TABLE", "t"), ("CF_DLQ_URL", "https://dlq")],
            extra,
        )
    };
    let c = vars(&[]).unwrap();
    assert_eq!(
        (c.route, c.lease, c.ttl),
        (Route::Group(EventGroup::WorkUnit), DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL)
    );
    assert_eq!(c.destinations, Destinations::default(), "no destination unless asked");
    assert_eq!(c.ordering, crate::consumer::Order::Latest, "late events are skipped by default");
    assert_eq!(vars(&[("CF_ORDERING", " All ")]).unwrap().ordering, crate::consumer::Order::All);
    assert_eq!(vars(&[("CF_ORDERING", "newest")]).unwrap_err().var, "CF_ORDERING");
    assert_eq!(c.drift, crate::consumer::DriftMode::Report, "drift is reported by default");
    assert_eq!(vars(&[("CF_DRIFT", " OFF ")]).unwrap().drift, crate::consumer::DriftMode::Off);
    let drift = vars(&[("CF_DRIFT", "loud")]).unwrap_err();
    assert_eq!((drift.var, drift.problem.as_str()), ("CF_DRIFT", r#"expected report or off, got "loud""#));
    assert_eq!(vars(&[("CF_EVENT_GROUP", "invoice")]).unwrap_err().var, "CF_EVENT_GROUP");
    assert_eq!(vars(&[("CF_IDEMPOTENCY_TTL_SECS", "3600")]).unwrap_err().var, "CF_IDEMPOTENCY_TTL_SECS");
    assert!(vars(&[("CF_IDEMPOTENCY_TTL_SECS", "3600"), ("CF_MAX_EVENT_AGE_SECS", "600")]).is_ok());
    let lease = |timeout, lease| vars(&[("CF_CONSUMER_TIMEOUT_SECS", timeout), ("CF_IDEMPOTENCY_LEASE_SECS", lease)]);
    let short = lease("60", "60").unwrap_err();
    assert_eq!(short.var, "CF_IDEMPOTENCY_LEASE_SECS", "a lease must outlast the whole invocation");
    assert!(short.problem.contains("CF_CONSUMER_TIMEOUT_SECS (60s)"), "{}", short.problem);
    assert_eq!(lease("60", "120").unwrap().timeout, Some(Duration::from_secs(60)));
    let missing = ConsumerConfig::from_lookup(|_| None).unwrap_err();
    assert_eq!(missing.var, "CF_EVENT_GROUP");
    assert_eq!(vars(&[]).unwrap().max_receives, crate::stack::DEFAULT_MAX_RECEIVES);
    assert_eq!(vars(&[("CF_MAX_RECEIVE_COUNT", " 12 ")]).unwrap().max_receives, 12);
    for wrong in ["0", "1001", "five", "-1"] {
        let refused = vars(&[("CF_MAX_RECEIVE_COUNT", wrong)]).unwrap_err();
        assert_eq!(refused.var, "CF_MAX_RECEIVE_COUNT", "{wrong}");
    }
}

#[test]
fn destinations_are_validated_at_start_up_and_never_quote_the_forward_secret() {
    let vars = |extra: &[(&'static str, &'static str)]| {
        consumer(&[("CF_EVENT_GROUP", "task"), ("CF_IDEMPOTENCY_TABLE", "t"), ("CF_DLQ_URL", "https://dlq")], extra)
    };
    let all = vars(&[
        ("CF_DESTINATIONS", "eventbridge, http,archive"),
        ("CF_EVENT_BUS", "studio-events"),
        ("CF_FORWARD_URL", "https://studio.example/hooks/cf?x=1"),
        ("CF_FORWARD_SECRET", "fw-s3cret"),
        ("CF_ARCHIVE_BUCKET", "b"),
        ("CF_ARCHIVE_PREFIX", "/cf/"),
    ])
    .unwrap();
    let d = &all.destinations;
    assert_eq!(d.names(), ["eventbridge", "http", "archive"]);
    assert_eq!(d.eventbridge.as_ref().unwrap().source, "creativeforce");
    assert_eq!(d.http.as_ref().unwrap().timeout, DEFAULT_FORWARD_TIMEOUT);
    assert_eq!(d.archive.as_ref().unwrap().prefix, "cf");
    assert!(!format!("{all:?}").contains("fw-s3cret"));
    assert!(!format!("{all:?}").contains("x=1"), "the URL's query may hold a token");

    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("CF_DESTINATIONS", "slack")], "CF_DESTINATIONS"),
        (&[("CF_DESTINATIONS", "eventbridge")], "CF_EVENT_BUS"),
        (
            &[("CF_DESTINATIONS", "eventbridge"), ("CF_EVENT_BUS", "b"), ("CF_EVENT_SOURCE", "aws.s3")],
            "CF_EVENT_SOURCE",
        ),
        (&[("CF_DESTINATIONS", "http"), ("CF_FORWARD_SECRET", "s")], "CF_FORWARD_URL"),
        (&[("CF_DESTINATIONS", "http"), ("CF_FORWARD_URL", "ftp://x"), ("CF_FORWARD_SECRET", "s")], "CF_FORWARD_URL"),
        (
            &[("CF_DESTINATIONS", "http"), ("CF_FORWARD_URL", "https://u:p@x"), ("CF_FORWARD_SECRET", "s")],
            "CF_FORWARD_URL",
        ),
        (&[("CF_DESTINATIONS", "http"), ("CF_FORWARD_URL", "/relative"), ("CF_FORWARD_SECRET", "s")], "CF_FORWARD_URL"),
        (&[("CF_DESTINATIONS", "http"), ("CF_FORWARD_URL", "https://x")], "CF_FORWARD_SECRET"),
        (
            &[
                ("CF_DESTINATIONS", "http"),
                ("CF_FORWARD_URL", "https://x"),
                ("CF_FORWARD_SECRET", "s"),
                ("CF_FORWARD_SECRET_ARN", "arn"),
            ],
            "CF_FORWARD_SECRET",
        ),
        (
            &[
                ("CF_DESTINATIONS", "http"),
                ("CF_FORWARD_URL", "https://x"),
                ("CF_FORWARD_SECRET", "{\"secret\":\"leak-me\",\"bad\":1}"),
            ],
            "CF_FORWARD_SECRET",
        ),
        (
            &[
                ("CF_DESTINATIONS", "http"),
                ("CF_FORWARD_URL", "https://x"),
                ("CF_FORWARD_SECRET", "s"),
                ("CF_FORWARD_TIMEOUT_MS", "0"),
            ],
            "CF_FORWARD_TIMEOUT_MS",
        ),
        (&[("CF_DESTINATIONS", "archive")], "CF_ARCHIVE_BUCKET"),
        (
            &[("CF_DESTINATIONS", "archive"), ("CF_ARCHIVE_BUCKET", "b"), ("CF_ARCHIVE_PREFIX", "a/../b")],
            "CF_ARCHIVE_PREFIX",
        ),
    ];
    for (extra, var) in cases {
        let err = vars(extra).unwrap_err();
        assert_eq!(&err.var, var, "{extra:?}: {err}");
        assert!(!err.to_string().contains("leak-me"), "{err}");
    }

    let only_jobs = vars(&[
        ("CF_DESTINATIONS", "eventbridge,,archive"),
        ("CF_EVENT_BUS", "b"),
        ("CF_EVENTBRIDGE_GROUPS", "job, Work Unit"),
        ("CF_ARCHIVE_BUCKET", "b"),
        ("CF_ARCHIVE_GROUPS", "all"),
    ])
    .unwrap();
    assert_eq!(only_jobs.destinations.names(), ["archive"], "a task consumer skips what serves other groups");
    let typo = vars(&[("CF_DESTINATIONS", "eventbridge"), ("CF_EVENT_BUS", "b"), ("CF_EVENTBRIDGE_GROUPS", "taks")]);
    assert_eq!(typo.unwrap_err().var, "CF_EVENTBRIDGE_GROUPS");
    let none = vars(&[("CF_DESTINATIONS", "eventbridge"), ("CF_EVENT_BUS", "b"), ("CF_EVENTBRIDGE_GROUPS", "none")]);
    assert_eq!(none.unwrap().destinations, Destinations::default());

    let unrouted = |extra: &[(&'static str, &'static str)]| {
        consumer(&[("CF_EVENT_GROUP", "unrouted"), ("CF_DLQ_URL", "https://dlq")], extra)
    };
    let archiver = unrouted(&[("CF_DESTINATIONS", "archive"), ("CF_ARCHIVE_BUCKET", "b")]).unwrap();
    assert_eq!(archiver.route, Route::Unrouted);
    assert_eq!(unrouted(&[]).unwrap_err().var, "CF_DESTINATIONS", "the unrouted consumer only archives");
}

#[test]
fn a_plain_http_forward_to_another_machine_is_refused_unless_allowed() {
    let forward = |url: &str, allow: Option<&str>| {
        let map: HashMap<&str, String> = [
            ("CF_DESTINATIONS", "http".to_owned()),
            ("CF_FORWARD_URL", url.to_owned()),
            ("CF_FORWARD_SECRET", "s".to_owned()),
        ]
        .into_iter()
        .chain(allow.map(|a| ("CF_FORWARD_ALLOW_HTTP", a.to_owned())))
        .collect();
        Destinations::from_lookup(&|name: &str| map.get(name).cloned())
    };
    let refused = forward("http://studio.example/hooks", None).unwrap_err();
    assert_eq!(refused.var, "CF_FORWARD_URL");
    assert!(refused.problem.contains("unencrypted") && refused.problem.contains("CF_FORWARD_ALLOW_HTTP"), "{refused}");
    assert!(forward("http://10.0.0.7:8080/hooks", Some("false")).is_err(), "a private address is still the network");
    for local in ["http://127.0.0.1:8080/hooks", "http://localhost/hooks", "http://[::1]:9000/h", "http://127.8.9.1/"] {
        assert!(forward(local, None).is_ok(), "{local}: loopback never leaves the machine");
    }
    assert!(forward("http://studio.example/hooks", Some("true")).is_ok(), "allowed explicitly");
    assert!(forward("https://studio.example/hooks", None).is_ok());
    assert_eq!(forward("http://studio.example/", Some("yes")).unwrap_err().var, "CF_FORWARD_ALLOW_HTTP");
}

#[test]
fn secrets_from_secrets_manager() {
    let c = config(&[
        ("CF_WEBHOOK_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:cf"),
        ("CF_SECRET_REFRESH_SECS", "60"),
    ])
    .unwrap();
    assert_eq!(c.secret_store.unwrap().arn, "arn:aws:secretsmanager:eu-west-1:1:secret:cf");
    assert!(c.secrets.is_empty(), "filled by the first read of the store");
}

#[test]
fn errors_name_the_variable_and_never_the_secret() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "CF_WEBHOOK_SECRET"),
        (&[("CF_WEBHOOK_SECRET", "a,,b")], "CF_WEBHOOK_SECRET"),
        (&[("CF_WEBHOOK_SECRET", "sekrit!"), ("CF_SECRET_ENCODING", "base64")], "CF_WEBHOOK_SECRET"),
        (&[("CF_WEBHOOK_SECRET", "s"), ("CF_SECRET_ENCODING", "rot13")], "CF_SECRET_ENCODING"),
        (&[("CF_WEBHOOK_SECRET", "s"), ("CF_MAX_BODY_BYTES", "lots")], "CF_MAX_BODY_BYTES"),
        (&[("CF_WEBHOOK_SECRET", "s"), ("CF_MAX_BODY_BYTES", "1000000")], "CF_MAX_BODY_BYTES"),
        (&[("CF_WEBHOOK_SECRET", "s"), ("CF_QUEUE_MAX_MESSAGE_BYTES", "262144")], "CF_MAX_BODY_BYTES"),
        (&[("CF_WEBHOOK_SECRET", "s"), ("CF_REQUIRED_HEADER_NAME", "X-A")], "CF_REQUIRED_HEADER_VALUE"),
        (&[("CF_WEBHOOK_SECRET", "s"), ("CF_REQUIRED_HEADER_VALUE", "v")], "CF_REQUIRED_HEADER_NAME"),
        (&[("CF_WEBHOOK_SECRET", "s"), ("CF_REQUIRED_HEADER_VALUE_ARN", "arn")], "CF_REQUIRED_HEADER_NAME"),
        (
            &[
                ("CF_WEBHOOK_SECRET", "s"),
                ("CF_REQUIRED_HEADER_NAME", "X-A"),
                ("CF_REQUIRED_HEADER_VALUE", "v"),
                ("CF_REQUIRED_HEADER_VALUE_ARN", "arn"),
            ],
            "CF_REQUIRED_HEADER_VALUE_ARN",
        ),
        (
            &[("CF_WEBHOOK_SECRET", "s"), ("CF_REQUIRED_HEADER_NAME", "bad name"), ("CF_REQUIRED_HEADER_VALUE", "v")],
            "CF_REQUIRED_HEADER_NAME",
        ),
        (&[("CF_WEBHOOK_SECRET", "s"), ("CF_FILTER_EVENT_GROUPS", "task,invoice")], "CF_FILTER_EVENT_GROUPS"),
        (&[("CF_WEBHOOK_SECRET", "s"), ("CF_ENQUEUE_TIMEOUT_MS", "0")], "CF_ENQUEUE_TIMEOUT_MS"),
        (&[("CF_WEBHOOK_SECRET", "s"), ("CF_WEBHOOK_SECRET_ARN", "arn")], "CF_WEBHOOK_SECRET_ARN"),
        (&[("CF_WEBHOOK_SECRET_ARN", "arn"), ("CF_SECRET_REFRESH_SECS", "often")], "CF_SECRET_REFRESH_SECS"),
    ];
    for (vars, var) in cases {
        let err = config(vars).unwrap_err();
        assert_eq!(err.var, *var, "{vars:?}: {err}");
        assert!(err.to_string().starts_with(var));
        assert!(!err.to_string().contains("sekrit"));
    }
}
