//! Config
pub mod dataurl;
pub mod unit;
pub mod url;
