//! Test harness: the real `automations` binary on a free port with a temporary data dir, a
//! small API client, and a webhook receiver on loopback.

pub mod moto;
pub mod receiver;
pub mod server;

pub use receiver::{Delivery, Receiver};
pub use server::{Api, Server, ServerOptions};
