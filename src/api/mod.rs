//! Free functions of QEMU's plugin API that are neither callbacks nor handles: guest
//! memory and program layout ([`guest`]), output and argument parsing ([`misc`]), and
//! time control ([`time`]).

pub mod guest;
pub mod misc;
#[cfg(since_api_4)]
pub mod time;

#[cfg(test)]
mod tests;
