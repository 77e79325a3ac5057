//! Free functions of QEMU's plugin API that are neither callbacks nor handles: guest
//! memory and program layout ([`guest`]), output and argument parsing ([`misc`]), and
//! time control ([`time`]).

pub mod guest;
pub mod misc;
#[cfg(since_api_4)]
pub mod time;

// Guest memory and registers through the mock: API 4 and later.
#[cfg(all(test, since_api_4))]
mod tests;
