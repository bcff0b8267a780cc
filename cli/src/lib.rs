//! `cfwh`: cf-webhooks on one machine. `dev` runs the whole pipeline in one process;
//! `sign`, `verify` and `send` act like Creative Force.

pub mod aws;
pub mod dev;
pub mod send;
