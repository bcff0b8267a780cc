//! `cfwh`: cf-webhooks on one machine, one module per command. `dev` runs the whole
//! pipeline in one process; `sign`, `verify` and `send` act like Creative Force;
//! `redrive` empties a dead-letter queue; `listen` runs the handlers on a deployed
//! stack's queues; `template` and `groups` print what the code defines for the template
//! and the scripts.

pub mod archived;
pub mod aws;
pub mod dev;
pub mod drift;
pub mod groups;
pub mod listen;
pub mod redrive;
pub mod replay;
pub mod schemas;
pub mod send;
pub mod sign;
pub mod template;
pub mod verify;

/// A file's exact bytes, or an error naming it.
pub(crate) fn read(file: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))
}
