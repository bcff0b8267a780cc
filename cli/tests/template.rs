//! The committed files that repeat the code's definitions agree with it: template.yaml
//! (groups, variables, queues, metric names) and the README's table of event names.

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
fn the_readme_lists_every_event_name() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for group in cf_webhooks::events::EventGroup::ALL {
        let row = format!("| `{group}` | ");
        let line = readme.lines().find(|l| l.starts_with(&row)).unwrap_or_else(|| panic!("no README row for {group}"));
        let listed: Vec<&str> =
            line[row.len()..].trim_end_matches(" |").split(", ").map(|n| n.trim_matches('`')).collect();
        assert_eq!(listed, cf_webhooks::events::detail_types(group), "README's names of {group}");
    }
}

#[test]
fn the_readme_documents_every_template_parameter() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let template = cfwh::template::template();
    let parameters = template["Parameters"].as_mapping().unwrap();
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    for name in parameters.keys().map(|k| k.as_str().unwrap()) {
        let quoted = format!("`{name}`");
        assert!(
            rows.iter().any(|row| row.split('|').nth(1).is_some_and(|cell| cell.contains(&quoted))),
            "README: no row for {name}"
        );
    }
}

#[test]
fn the_readme_lists_every_shared_facet() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let mut missing = Vec::new();
    for group in cf_webhooks::events::EventGroup::ALL {
        let facets: Vec<String> = cf_webhooks::events::ordering::shared_facets(group)
            .into_iter()
            .map(|(facet, actions)| format!("`{facet}`: {}", actions.join(", ")))
            .collect();
        let expected = facets.join("; ");
        let row = format!("| {group} | ");
        match readme.lines().find(|l| l.starts_with(&row)) {
            Some(line) => {
                let cell = line.trim_end_matches(" |").rsplit(" | ").next().unwrap_or_default();
                if cell != expected {
                    missing.push(format!("{group}: README has {cell:?}, the code {expected:?}"));
                }
            }
            None => missing.push(format!("no README row `| {group} | <entity> | {expected} |`")),
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The Python tools are pinned by version and hash, their dependencies included, and the
/// lock holds every tool `scripts/requirements.txt` names.
#[test]
fn the_python_tools_are_pinned_with_hashes() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let lock = std::fs::read_to_string(format!("{root}/scripts/requirements.lock")).unwrap();
    let wanted = std::fs::read_to_string(format!("{root}/scripts/requirements.txt")).unwrap();
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
    assert!(pinned.len() > 50, "the dependencies are in the lock too: {}", pinned.len());
    for tool in wanted.lines().filter_map(|l| l.split('#').next()).map(str::trim).filter(|l| !l.is_empty()) {
        let name = tool.split(|c: char| "[<>=!~ ".contains(c)).next().unwrap().to_ascii_lowercase();
        assert!(
            pinned.contains(&name),
            "{name} is not in scripts/requirements.lock: run pip-compile (scripts/tools.sh)"
        );
    }
    assert!(!lock.contains("--find-links"), "hashes from PyPI only");
}
