//! The committed files that repeat the code's definitions agree with it: template.yaml
//! (groups, variables, queues, metric names) and the tables of docs/ that list them for people.

#[test]
fn the_committed_template_is_what_cfwh_template_writes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let committed = std::fs::read_to_string(path).expect("template.yaml at the repository's root");
    assert!(committed == cfwh::template::render(), "template.yaml is stale: run `make template` and commit it");
}

#[test]
fn the_iam_checks_of_make_validate_pass() {
    assert_eq!(cfwh::template::iam_problems(), Vec::<String>::new());
}

#[test]
fn the_docs_list_every_event_name() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/without-rust.md")).unwrap();
    for group in cf_webhooks::events::EventGroup::ALL {
        let row = format!("| `{group}` | ");
        let line = page
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("docs/without-rust.md: no row for {group}"));
        let listed: Vec<&str> =
            line[row.len()..].trim_end_matches(" |").split(", ").map(|n| n.trim_matches('`')).collect();
        assert_eq!(listed, cf_webhooks::events::detail_types(group), "docs/without-rust.md's names of {group}");
    }
}

#[test]
fn the_docs_document_every_template_parameter() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploying.md")).unwrap();
    let template = cfwh::template::template();
    let parameters = template["Parameters"].as_mapping().unwrap();
    let rows: Vec<&str> = page.lines().filter(|l| l.starts_with("| `")).collect();
    for name in parameters.keys().map(|k| k.as_str().unwrap()) {
        let quoted = format!("`{name}`");
        assert!(
            rows.iter().any(|row| row.split('|').nth(1).is_some_and(|cell| cell.contains(&quoted))),
            "docs/deploying.md: no row for {name}"
        );
    }
}

#[test]
fn the_docs_list_every_shared_facet() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/guarantees.md")).unwrap();
    let mut missing = Vec::new();
    for group in cf_webhooks::events::EventGroup::ALL {
        let facets: Vec<String> = cf_webhooks::events::ordering::shared_facets(group)
            .into_iter()
            .map(|(facet, actions)| format!("`{facet}`: {}", actions.join(", ")))
            .collect();
        let expected = facets.join("; ");
        let row = format!("| {group} | ");
        match page.lines().find(|l| l.starts_with(&row)) {
            Some(line) => {
                let cell = line.trim_end_matches(" |").rsplit(" | ").next().unwrap_or_default();
                if cell != expected {
                    missing.push(format!("{group}: docs/guarantees.md has {cell:?}, the code {expected:?}"));
                }
            }
            None => missing.push(format!("docs/guarantees.md: no row `| {group} | <entity> | {expected} |`")),
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The Python tools are pinned by version and hash, their dependencies included, and the
/// lock holds every tool `scripts/requirements.txt` names.
#[test]
fn the_python_tools_are_pinned_with_hashes() {
    for (lock, wanted) in [
        ("requirements.lock", "requirements.txt"),
        ("checkov.lock", "checkov.txt"),
        ("localstack.lock", "localstack.txt"),
    ] {
        pinned_with_hashes(lock, wanted);
    }
}

fn pinned_with_hashes(lock_file: &str, wanted_file: &str) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let lock = std::fs::read_to_string(format!("{root}/scripts/{lock_file}")).unwrap();
    let wanted = std::fs::read_to_string(format!("{root}/scripts/{wanted_file}")).unwrap();
    // Requirement blocks: a `name==version \` line, then its `--hash=sha256:` lines.
    let mut pinned = Vec::new();
    let lines: Vec<&str> = lock.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            let (name, _) = line.split_once("==").unwrap_or_else(|| panic!("not pinned to a version: {line}"));
            let hashes = lines[i + 1..].iter().take_while(|l| l.trim_start().starts_with("--hash=sha256:")).count();
            assert!(hashes >= 1, "{name} has no hash");
            // `moto[server]==…`: the extras are part of the pin, not of the name.
            pinned.push(name.split('[').next().unwrap_or(name).to_ascii_lowercase());
        }
    }
    assert!(pinned.len() > 50, "{lock_file}: the dependencies are in the lock too: {}", pinned.len());
    for tool in wanted.lines().filter_map(|l| l.split('#').next()).map(str::trim).filter(|l| !l.is_empty()) {
        let name = tool.split(|c: char| "[<>=!~ ".contains(c)).next().unwrap().to_ascii_lowercase();
        assert!(pinned.contains(&name), "{name} is not in scripts/{lock_file}: run pip-compile (scripts/tools.sh)");
    }
    assert!(!lock.contains("--find-links"), "hashes from PyPI only");
}

/// Every check the policy linter skips (scripts/checkov.yaml) has its reason in
/// docs/security.md, and the page gives a reason for no check that is not skipped.
#[test]
fn every_skipped_policy_check_is_justified_in_the_security_page() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let config = std::fs::read_to_string(format!("{root}/scripts/checkov.yaml")).unwrap();
    let mut skipped: Vec<String> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- CKV"))
        .map(|rest| format!("CKV{}", rest.split_whitespace().next().unwrap()))
        .collect();
    let page = std::fs::read_to_string(format!("{root}/docs/security.md")).unwrap();
    let mut justified: Vec<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| `CKV"))
        .map(|rest| format!("CKV{}", rest.split('`').next().unwrap()))
        .collect();
    skipped.sort();
    justified.sort();
    assert!(!skipped.is_empty());
    assert_eq!(skipped, justified, "scripts/checkov.yaml's skips and docs/security.md's reasons");
}

/// `cargo deny`, as `make test` runs it with deny.toml: on a workspace of path crates
/// (nothing fetched) it refuses a banned crate and a copyleft licence, and it passes this
/// workspace. cargo-deny is built by scripts/deny.sh, which `make test` runs first.
#[test]
fn cargo_deny_refuses_a_banned_crate_and_a_copyleft_licence_and_passes_this_workspace() {
    use std::process::Command;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let policy = format!("{root}/deny.toml");
    if Command::new("cargo").args(["deny", "--version"]).output().map_or(true, |o| !o.status.success()) {
        assert!(std::env::var_os("CI").is_none(), "cargo deny is missing: make test installs it (scripts/deny.sh)");
        eprintln!("skipped: cargo deny is not installed (make test installs it)");
        return;
    }
    let check = |manifest: &str| {
        let out = Command::new("cargo")
            .args(["deny", "--manifest-path", manifest, "--config", &policy, "check", "bans", "licenses", "sources"])
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, report) = check(&format!("{root}/Cargo.toml"));
    assert!(ok, "this workspace breaks deny.toml:\n{report}");

    let dir = std::env::temp_dir().join(format!("cfwh-deny-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A private crate's licence is not checked (deny.toml): `copyleft` is public.
    let krate = |name: &str, license: &str, publish: bool, dependencies: &str| {
        std::fs::create_dir_all(dir.join(name).join("src")).unwrap();
        std::fs::write(dir.join(name).join("src/lib.rs"), "").unwrap();
        std::fs::write(
            dir.join(name).join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"{license}\"\n\
                 publish = {publish}\n\n[dependencies]\n{dependencies}"
            ),
        )
        .unwrap();
    };
    krate("openssl-sys", "MIT", false, "");
    krate("copyleft", "GPL-3.0-only", true, "");
    krate("app", "MIT", false, "openssl-sys = { path = \"../openssl-sys\" }\ncopyleft = { path = \"../copyleft\" }\n");
    std::fs::write(dir.join("Cargo.toml"), "[workspace]\nresolver = \"2\"\nmembers = [\"app\"]\n").unwrap();
    let (ok, report) = check(&dir.join("Cargo.toml").display().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!ok, "{report}");
    assert!(report.contains("openssl-sys") && report.contains("TLS is rustls on ring"), "the ban: {report}");
    assert!(report.contains("GPL-3.0-only"), "the licence: {report}");
}
