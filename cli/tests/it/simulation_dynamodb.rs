//! The simulation's scenarios, fewer of them, over the DynamoDB store on moto: the
//! conditional expressions (owner, lease, expiry, the version's transaction) under
//! every fault, not only the memory store's code.

use crate::common;

use std::sync::Arc;

use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::Budget;
use cf_webhooks::simulation::dynamodb::Blocking;
use cf_webhooks::simulation::{run_on, Config, SimStore};

#[test]
fn seeds_over_the_dynamodb_store_hold_every_invariant() {
    let runtime = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap());
    let client = runtime.block_on(common::dynamodb_at(&common::moto(), Budget::consumer()));
    let mut applied = 0;
    for seed in 0..16 {
        let table = format!("simulation-{seed}-{}", std::process::id());
        runtime.block_on(DynamoStore::create_table_if_missing(&client, &table)).unwrap();
        let (client, runtime) = (client.clone(), runtime.clone());
        let store = move |clock, lease, memory| -> Arc<dyn SimStore> {
            Arc::new(Blocking::new(DynamoStore::new(client, table, lease, memory), clock, runtime))
        };
        match run_on(Config::new(seed), Box::new(store)) {
            Ok(summary) => applied += summary.applications,
            Err(violation) => panic!("seed {seed} over DynamoDB: {violation:?}"),
        }
    }
    assert!(applied > 16, "the seeds applied events: {applied}");
}
