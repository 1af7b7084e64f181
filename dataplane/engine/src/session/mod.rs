//! Per-worker session state: the session table, the TCP/UDP state machine and the timer wheel.

pub mod table;
pub mod tcp;
pub mod timer;

pub use table::{InsertError, Session, SessionId, SessionTable, Side};
pub use tcp::{ConnState, Direction, TcpEvent};
pub use timer::TimerWheel;
