//! One handler per event group. Each logs a structured summary of its event: replace
//! the body of `handle` with the work your studio needs (call an API, write a row, …).
//!
//! Return `Err(HandlerError::retry(e))` (or use `?`) when a retry may help, and
//! `Err(HandlerError::permanent(e))` when it never will: the record then goes to the
//! group's dead-letter queue.

mod job;
mod product;
mod sample;
mod session;
mod task;
mod user;
mod work_unit;

pub use job::JobHandler;
pub use product::ProductHandler;
pub use sample::SampleHandler;
pub use session::SessionHandler;
pub use task::TaskHandler;
pub use user::UserHandler;
pub use work_unit::WorkUnitHandler;
