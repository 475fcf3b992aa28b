//! `exoscale` (Exoscale): the instance user data, `GET <base>/1.0/user-data` from the link-local
//! metadata service. A 404 or an empty body means no config.

use super::util::{NotFound, UserData};

/// The provider; `base` is the metadata service's base URL.
pub fn provider(base: &str) -> UserData {
    UserData {
        id: "exoscale",
        url: format!("{}/1.0/user-data", base.trim_end_matches('/')),
        not_found: NotFound::Empty,
    }
}
