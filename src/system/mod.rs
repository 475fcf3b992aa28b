//! system (see docs/architecture.md).
pub mod blockdev;
pub mod command;
pub mod devnames;
pub mod gpt;
pub mod kmod;
pub mod loopdev;
pub mod mounts;
pub mod net;
pub mod pid1;
pub mod probe;

/// Fills `buf` with random bytes from getrandom(2) (the syscall, so it works in a static
/// binary and before /dev/urandom exists).  Blocks only until the kernel's pool is seeded.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`, which we own.
        let r = unsafe {
            libc::syscall(
                libc::SYS_getrandom,
                buf[filled..].as_mut_ptr(),
                buf.len() - filled,
                0,
            )
        };
        if r > 0 {
            filled += r as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // getrandom(2) exists since Linux 3.17 and cannot otherwise fail with a valid
            // buffer; never loop forever.
            break;
        }
    }
}
pub mod passwd;
pub mod rootfs;
pub mod switch_root;
