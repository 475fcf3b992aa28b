//! What useradd/usermod/userdel do to the filesystem besides editing the account files: home
//! directories, /etc/skel, mail spools and the lastlog/faillog records. Everything goes
//! through [`Root`], so it all stays inside the target.

use std::io::{Read, Seek, SeekFrom, Write};

use super::Error;
use crate::system::rootfs::{OpenOptions, Ownership, Root};

/// `struct lastlog` on x86_64 glibc: int32 time, 32-byte line, 256-byte host.
const LASTLOG_RECORD: u64 = 292;
/// `struct faillog`: two shorts, 12-byte line, time_t, long.
const FAILLOG_RECORD: u64 = 32;
pub(crate) const LASTLOG: &str = "/var/log/lastlog";
pub(crate) const FAILLOG: &str = "/var/log/faillog";

/// One filesystem effect, planned while the account files are edited in memory and carried
/// out after they are written (the order shadow-utils uses).
#[derive(Debug, Clone)]
pub(crate) enum FsAction {
    /// useradd --create-home: parents 0755 root:root, the home `uid:gid` with `mode`, then
    /// a copy of `skel` — all only if the home did not exist yet.
    CreateHome {
        user: String,
        home: String,
        uid: u32,
        gid: u32,
        mode: u32,
        skel: String,
    },
    /// useradd without --no-log-init: zero the uid's lastlog and faillog records if the files
    /// already reach that far.
    ResetLogs { uid: u32, lastlog_uid_max: u64 },
    /// useradd with CREATE_MAIL_SPOOL=yes.
    CreateMail {
        file: String,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    /// usermod --home NEW --move-home.
    MoveHome {
        from: String,
        to: String,
        owners: Ownership,
    },
    /// usermod --uid/--gid without a move: re-own what the user owned in the home directory,
    /// if the home is owned by the user (old or new uid).
    ChownHome {
        home: String,
        old_uid: u32,
        new_uid: Option<u32>,
        owners: Ownership,
    },
    /// usermod --uid: the mailbox follows the user.
    ChownMail {
        file: String,
        old_uid: u32,
        new_uid: u32,
    },
    /// usermod --uid: copy the lastlog/faillog records to the new uid.
    MoveLogs {
        old_uid: u32,
        new_uid: u32,
        lastlog_uid_max: u64,
    },
    /// userdel --remove: the mailbox, if it is the user's.
    RemoveMail { user: String, file: String },
    /// userdel --remove: the home directory, if it is the user's.
    RemoveHome { user: String, home: String },
}

pub(crate) fn run(root: &Root, action: &FsAction) -> Result<(), Error> {
    match action {
        FsAction::CreateHome {
            user,
            home,
            uid,
            gid,
            mode,
            skel,
        } => create_home(root, user, home, *uid, *gid, *mode, skel),
        FsAction::ResetLogs {
            uid,
            lastlog_uid_max,
        } => {
            if u64::from(*uid) <= *lastlog_uid_max {
                zero_record(root, LASTLOG, LASTLOG_RECORD, *uid)?;
            }
            zero_record(root, FAILLOG, FAILLOG_RECORD, *uid)
        }
        FsAction::CreateMail {
            file,
            uid,
            gid,
            mode,
        } => create_mail(root, file, *uid, *gid, *mode),
        FsAction::MoveHome { from, to, owners } => move_home(root, from, to, *owners),
        FsAction::ChownHome {
            home,
            old_uid,
            new_uid,
            owners,
        } => {
            if let Some(st) = root.stat_follow(home)? {
                if st.uid == *old_uid || Some(st.uid) == *new_uid {
                    root.chown_tree(home, *owners)?;
                }
            }
            Ok(())
        }
        FsAction::ChownMail {
            file,
            old_uid,
            new_uid,
        } => {
            match root.lstat(file)? {
                Some(st) if st.is_file() && st.uid == *old_uid => {
                    root.lchown(file, Some(*new_uid), None)?
                }
                Some(_) => {
                    log::warn!("mailbox {file} is not a file owned by the user; leaving it alone")
                }
                None => {}
            }
            Ok(())
        }
        FsAction::MoveLogs {
            old_uid,
            new_uid,
            lastlog_uid_max,
        } => {
            if u64::from(*new_uid) <= *lastlog_uid_max {
                move_record(root, LASTLOG, LASTLOG_RECORD, *old_uid, *new_uid, true)?;
            }
            move_record(root, FAILLOG, FAILLOG_RECORD, *old_uid, *new_uid, false)
        }
        FsAction::RemoveMail { user, file } => {
            if root.lstat(file)?.is_some() {
                root.unlink(file)?;
            } else {
                log::info!("mail spool {file} of {user:?} not found");
            }
            Ok(())
        }
        FsAction::RemoveHome { user, home } => {
            if root.stat_follow(home)?.is_some() {
                root.remove_all(home)?;
            } else {
                log::info!("home directory {home} of {user:?} not found");
            }
            Ok(())
        }
    }
}

fn create_home(
    root: &Root,
    user: &str,
    home: &str,
    uid: u32,
    gid: u32,
    mode: u32,
    skel: &str,
) -> Result<(), Error> {
    if root.stat_follow(home)?.is_some() {
        log::warn!("home directory {home} of {user:?} already exists; not copying {skel} into it");
        return Ok(());
    }
    root.mkdir_all(home)?;
    root.lchown(home, Some(uid), Some(gid))?;
    root.chmod(home, mode)?;
    match root.stat_follow(skel)? {
        Some(st) if st.is_dir() => root.copy_tree(skel, home, Ownership::all(uid, gid))?,
        _ => log::info!("skeleton directory {skel} not found; {home} stays empty"),
    }
    Ok(())
}

fn create_mail(root: &Root, file: &str, uid: u32, gid: u32, mode: u32) -> Result<(), Error> {
    let opts = OpenOptions {
        write: true,
        create_new: true,
        mode,
        ..OpenOptions::default()
    };
    // useradd only warns when the mailbox cannot be created (exists, no spool directory).
    let f = match root.open_file(file, &opts) {
        Ok(f) => f,
        Err(e) => {
            log::warn!("creating mailbox: {e}");
            return Ok(());
        }
    };
    rustix::fs::fchown(
        &f,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .and_then(|()| rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(mode)))
    .map_err(|e| Error::Mailbox {
        path: file.to_string(),
        source: e.into(),
    })?;
    f.sync_all().map_err(|source| Error::Mailbox {
        path: file.to_string(),
        source,
    })
}

fn move_home(root: &Root, from: &str, to: &str, owners: Ownership) -> Result<(), Error> {
    if root.stat_follow(to)?.is_some() {
        return Err(Error::HomeExists {
            path: to.to_string(),
        });
    }
    match root.stat_follow(from)? {
        None => {
            log::warn!("previous home directory {from} does not exist; nothing to move");
            Ok(())
        }
        Some(st) if !st.is_dir() => Err(Error::OldHomeNotDir {
            path: from.to_string(),
        }),
        Some(_) => match root.rename(from, to) {
            Ok(()) => {
                root.chown_tree(to, owners)?;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                // Another filesystem: copy, then remove the original.
                if let Err(e) = root.copy_dir(from, to, owners) {
                    let _ = root.remove_all(to);
                    return Err(e.into());
                }
                if let Err(e) = root.remove_all(from) {
                    log::warn!("removing old home directory {from} after the copy: {e}");
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
    }
}

fn open_log(root: &Root, path: &str) -> Result<Option<std::fs::File>, Error> {
    match root.lstat(path)? {
        Some(st) if st.is_file() => {}
        Some(_) => {
            log::warn!("{path} is not a regular file; not touching it");
            return Ok(None);
        }
        None => return Ok(None),
    }
    let opts = OpenOptions {
        read: true,
        write: true,
        ..OpenOptions::default()
    };
    Ok(Some(root.open_file(path, &opts)?))
}

fn log_err(path: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::LogRecord {
        path: path.to_string(),
        source,
    }
}

/// useradd's faillog_reset/lastlog_reset: only when the file already extends past the record.
fn zero_record(root: &Root, path: &str, size: u64, uid: u32) -> Result<(), Error> {
    let Some(mut f) = open_log(root, path)? else {
        return Ok(());
    };
    let offset = size * u64::from(uid);
    let len = f.metadata().map_err(log_err(path))?.len();
    if len <= offset {
        return Ok(());
    }
    f.seek(SeekFrom::Start(offset)).map_err(log_err(path))?;
    f.write_all(&vec![0u8; size as usize])
        .map_err(log_err(path))?;
    f.sync_all().map_err(log_err(path))
}

/// usermod's update_lastlog/update_faillog: copy the old uid's record to the new uid; if the
/// old one is missing but the new one exists, zero the new one.
fn move_record(
    root: &Root,
    path: &str,
    size: u64,
    old: u32,
    new: u32,
    sync_reset: bool,
) -> Result<(), Error> {
    let Some(mut f) = open_log(root, path)? else {
        return Ok(());
    };
    let mut rec = vec![0u8; size as usize];
    let read_at = |f: &mut std::fs::File, uid: u32, buf: &mut [u8]| -> bool {
        f.seek(SeekFrom::Start(size * u64::from(uid))).is_ok() && f.read_exact(buf).is_ok()
    };
    if read_at(&mut f, old, &mut rec) {
        f.seek(SeekFrom::Start(size * u64::from(new)))
            .map_err(log_err(path))?;
        f.write_all(&rec).map_err(log_err(path))?;
        f.sync_all().map_err(log_err(path))?;
    } else if read_at(&mut f, new, &mut rec) {
        rec.fill(0);
        f.seek(SeekFrom::Start(size * u64::from(new)))
            .map_err(log_err(path))?;
        f.write_all(&rec).map_err(log_err(path))?;
        if sync_reset {
            f.sync_all().map_err(log_err(path))?;
        }
    }
    Ok(())
}
