//! The integration tests of `cfwh`, one binary: each file a concern (the binary run as a
//! user would, the pipeline over HTTP, over moto's services, under faults, …); linking
//! the AWS SDK once rather than once per file.

mod common;

mod binary;
mod cost;
mod destinations;
mod dev_http;
mod drift;
mod edges;
mod faults;
mod listen;
mod moto;
mod schemas;
mod send;
mod simulation_dynamodb;
mod template;
