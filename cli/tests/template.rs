//! template.yaml is what the code defines: a change of a group, a variable, a queue or a
//! metric name that is not written into the committed template fails here.

#[test]
fn the_committed_template_is_what_cfwh_template_writes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let committed = std::fs::read_to_string(path).expect("template.yaml at the repository's root");
    assert!(committed == cfwh::template::render(), "template.yaml is stale: run `make template` and commit it");
}

#[test]
fn no_statement_grants_a_wildcard() {
    assert_eq!(cfwh::template::wildcard_grants(), Vec::<String>::new());
}
