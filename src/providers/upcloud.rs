//! `upcloud` (UpCloud): the instance user data, `GET <base>/metadata/v1/user_data` from the
//! link-local metadata service (which must be enabled for custom images). A 404 or an empty body
//! means no config.

use super::util::{NotFound, UserData};

/// The provider; `base` is the metadata service's base URL.
pub fn provider(base: &str) -> UserData {
    UserData {
        id: "upcloud",
        url: format!("{}/metadata/v1/user_data", base.trim_end_matches('/')),
        not_found: NotFound::Empty,
    }
}
