//! Full-NAT pipeline (in progress).
