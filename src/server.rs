//! Listeners, workers, per-connection buffers and state, backpressure and
//! limits (-c, -R, idle timeout).
//!
//! Must not interpret bytes beyond calling `protocol::parse` and
//! `command::execute`.

use std::io;
use std::net::SocketAddr;

use crate::config::Config;

/// A running server: its bound addresses and a way to stop it.
#[derive(Debug)]
pub struct ServerHandle {
    tcp: Vec<SocketAddr>,
    udp: Vec<SocketAddr>,
}

impl ServerHandle {
    /// Bound TCP addresses (the real port when `-p 0` was asked).
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// Bound UDP addresses (empty unless `-U`).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// Asks every thread to stop, finishing replies in flight; returns once
    /// they have.
    pub fn shutdown(self) {
        todo!()
    }

    /// Blocks until the server stops (a `shutdown` command or a signal).
    pub fn wait(self) {
        todo!()
    }
}

/// Binds every listener in `config` and starts the threads.
pub fn start(config: Config) -> io::Result<ServerHandle> {
    let _ = config;
    todo!()
}
