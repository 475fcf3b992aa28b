//! Config
pub mod dataurl;
pub mod url;
