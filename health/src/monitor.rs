//! stub
pub struct Monitor;
pub trait Sink {}
