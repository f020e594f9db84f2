//! Test harness: the real `automations` binary on a free port with a temporary data dir, a
//! small API client, agents of its queues, a webhook receiver on loopback, and the Lambda functions' world on
//! moto's server.

pub mod agent;
pub mod lambda_stack;
pub mod mlflow;
pub mod moto;
pub mod receiver;
pub mod request_counter;
pub mod server;

pub use agent::Agent;
pub use receiver::{Delivery, Receiver};
pub use server::{Api, Server, ServerOptions};
