//! `powervs` (IBM Power Systems Virtual Server): `openstack/latest/user_data` on the config drive
//! labelled `config-2` (a missing file means no config). Ignition waits for the drive forever;
//! Ember stops after [`super::Endpoints::drive_wait`] with an error. Works offline.

use super::configdrive::{OpenStackDrive, Search};

/// The provider; `drives` finds the config drive.
pub fn provider(drives: Search) -> OpenStackDrive {
    OpenStackDrive {
        id: "powervs",
        drives,
    }
}
