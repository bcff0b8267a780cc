//! Destinations: where a consumer delivers each event besides the studio's handler, with
//! no Rust to write. This module holds the planning each destination needs before any
//! call is made; the clients come with the destinations themselves.

pub mod eventbridge;
pub mod http;
