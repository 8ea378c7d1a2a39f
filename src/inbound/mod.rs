//! Decisions about what came in: which event it is, what it asks for, and
//! whether its sender may ask it. Pure: imports only `domain`.

pub(crate) mod authorize;
pub mod classify;
