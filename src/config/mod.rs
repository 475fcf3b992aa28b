//! Config
pub mod dataurl;
