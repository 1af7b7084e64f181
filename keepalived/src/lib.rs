//! keepalived.conf as fnat reads it.
//!
//! Three stages, each in its own module:
//! - [`source`]: files to logical lines, as keepalived's own reader does (comments, `\`
//!   continuations, `include` globs, `@id` conditional lines, `$NAME=value` parameters);
//! - [`tree`]: lines to a tree of statements and `{ … }` blocks;
//! - [`vrrp`]: `vrrp_instance` blocks, for fnat's VRRP service;
//! - [`lvs`]: the tree to keepalived's LVS configuration (virtual servers, groups, real
//!   servers, checkers) with keepalived's defaults and VS → RS → checker inheritance applied.
//!
//! [`notify_fifo`] writes keepalived's notify FIFOs (VRRP's and the checker's lines).
//!
//! And back: [`write`] writes the live rules (the one rule model) as keepalived.conf.
//!
//! Every problem is a [`Diagnostic`] naming file, line and keyword. Errors make the file
//! unusable; warnings (unknown keywords, blocks kept for later) are what keepalived logs and
//! carries on after. Nothing here panics on any input.
#![forbid(unsafe_code)]

pub mod diag;
pub mod lvs;
pub mod notify_fifo;
pub mod source;
pub mod sync;
pub mod tree;
pub mod vrrp;
pub mod write;

pub use diag::{Diagnostic, Level, Location};
pub use lvs::{read_file, read_str, Config};
