//! The internal config model: the latest spec (3.7.0-experimental, a superset of 3.6.0), with a
//! field table per type.
//!
//! Configs of every spec version are decoded into these types and translated up; the tables say
//! which version introduced each field, what Go type Ignition gives it (for its error texts), and
//! how it behaves in older versions. One table drives decoding, marshalling, the validation walk,
//! duplicate and unused-key checks, merging and the JSON Schema generator, so the five cannot
//! disagree about the shape of a config.
//!
//! Field kinds mirror Ignition's Go types: `String`/`i64` are Go values (a JSON `null` leaves them
//! alone, a merge always takes the child's), `Option<_>` are Go pointers (`null` clears them, a
//! merge takes the child's only when set), structs are Go struct values, lists are slices.

use std::any::Any;
use std::fmt::Debug;

use super::version::Spec;

/// How a field of an older spec differs from the latest model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    None,
    /// A plain Go string up to 3.2 (`link.target`, `raid.level`): `null` is ignored and the
    /// translation to 3.3 always makes it set, possibly to "".
    ValueStrUntil3_2,
    /// In 3.0 the CA reference's `source` is a plain string (always set after translation).
    ValueStrIn3_0,
    /// In 3.2 the field is a Go pointer to a struct (`luks.clevis`, `clevis.custom`): `null`
    /// resets it.
    PtrStructIn3_2,
    /// In 3.2 a plain string inside a pointer struct (`custom.pin`, `custom.config`): set
    /// (possibly to "") whenever the struct is present.
    ValueStrIn3_2,
}

/// Which shape a `Resource` field had in spec 3.0, where there were three distinct types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape30 {
    /// Not a resource field, or no 3.0 difference.
    Full,
    /// `files[].contents`, `files[].append[]`: compression, source, verification.
    FileContents,
    /// `ignition.config.merge[]`, `ignition.config.replace`: source, verification.
    ConfigReference,
    /// `ignition.security.tls.certificateAuthorities[]`: source (a plain string), verification.
    CaReference,
}

impl Shape30 {
    pub fn go_name(self) -> Option<&'static str> {
        match self {
            Shape30::Full => None,
            Shape30::FileContents => Some("FileContents"),
            Shape30::ConfigReference => Some("ConfigReference"),
            Shape30::CaReference => Some("CaReference"),
        }
    }
}

/// Constraints for the JSON Schema (and the linter's hints).
#[derive(Clone, Copy, Debug)]
pub enum Constraint {
    None,
    Enum(&'static [&'static str]),
    Pattern(&'static str),
    Range(i64, i64),
}

/// One field of a config type.
#[derive(Clone, Copy, Debug)]
pub struct FieldDesc {
    /// The JSON key.
    pub json: &'static str,
    /// The Go type name Ignition's decoder prints for this field (`int`, `string`,
    /// `types.NodeUser`, `[]types.File`, `types.HTTPHeaders`).
    pub go_type: &'static str,
    /// For lists, the Go type of one element.
    pub elem_go_type: &'static str,
    pub since: Spec,
    pub doc: &'static str,
    pub quirk: Quirk,
    pub shape30: Shape30,
    /// Go marshals this field even when empty (no `omitempty`).
    pub always_marshal: bool,
    /// Merged by appending instead of by key, and exempt from duplicate checks.
    pub append_list: bool,
    pub constraint: Constraint,
}

impl FieldDesc {
    pub const fn new(json: &'static str, go_type: &'static str, doc: &'static str) -> Self {
        FieldDesc {
            json,
            go_type,
            elem_go_type: "",
            since: Spec::V3_0,
            doc,
            quirk: Quirk::None,
            shape30: Shape30::Full,
            always_marshal: false,
            append_list: false,
            constraint: Constraint::None,
        }
    }
    pub const fn since(mut self, v: Spec) -> Self {
        self.since = v;
        self
    }
    pub const fn elem(mut self, t: &'static str) -> Self {
        self.elem_go_type = t;
        self
    }
    pub const fn quirk(mut self, q: Quirk) -> Self {
        self.quirk = q;
        self
    }
    pub const fn shape30(mut self, s: Shape30) -> Self {
        self.shape30 = s;
        self
    }
    pub const fn always(mut self) -> Self {
        self.always_marshal = true;
        self
    }
    pub const fn append(mut self) -> Self {
        self.append_list = true;
        self
    }
    pub const fn constraint(mut self, c: Constraint) -> Self {
        self.constraint = c;
        self
    }

    /// Whether a config of version `spec` has this field.
    pub fn in_spec(&self, spec: Spec) -> bool {
        spec >= self.since
    }
}

/// A config type.
#[derive(Debug)]
pub struct StructDesc {
    /// The Go type's name without package (`File`).
    pub go_name: &'static str,
    pub doc: &'static str,
    pub fields: &'static [FieldDesc],
    /// The version that introduced the type.
    pub since: Spec,
}

/// Mutable access to one field, by kind.
pub enum FieldMut<'a> {
    Str(&'a mut String),
    OptStr(&'a mut Option<String>),
    Int(&'a mut i64),
    OptInt(&'a mut Option<i64>),
    OptBool(&'a mut Option<bool>),
    Struct(&'a mut dyn DynStruct),
    List(&'a mut dyn DynList),
    StrList(&'a mut Vec<String>),
}

/// Read access to one field, by kind.
pub enum FieldRef<'a> {
    Str(&'a String),
    OptStr(&'a Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    OptBool(Option<bool>),
    Struct(&'a dyn DynStruct),
    List(&'a dyn DynList),
    StrList(&'a [String]),
}

/// A config struct, seen through its field table.
pub trait DynStruct: Any + Debug {
    fn desc(&self) -> &'static StructDesc;
    fn field(&self, i: usize) -> FieldRef<'_>;
    fn field_mut(&mut self, i: usize) -> FieldMut<'_>;
    fn as_any(&self) -> &dyn Any;
    fn reset(&mut self);
    fn clone_box(&self) -> Box<dyn DynStruct>;
    /// Replaces `self` with a copy of `other`, which must be of the same type.
    fn assign(&mut self, other: &dyn DynStruct);
    /// The key Ignition uses for duplicate checks and merging (`Key()` in its types), if any.
    fn key_ref(&self) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
    fn key(&self) -> Option<String> {
        self.key_ref().map(std::borrow::Cow::into_owned)
    }
    /// Whether every field is at its zero value (Go's "zero struct").
    fn is_zero(&self) -> bool;
}

/// A list of config structs.
pub trait DynList: Debug {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn get(&self, i: usize) -> &dyn DynStruct;
    fn get_mut(&mut self, i: usize) -> &mut dyn DynStruct;
    fn push_default(&mut self);
    fn reserve_exact(&mut self, additional: usize);
    fn truncate(&mut self, n: usize);
    fn clear(&mut self);
    fn elem_desc(&self) -> &'static StructDesc;
    /// Appends a clone of `item`, which must be of this list's element type.
    fn push_clone(&mut self, item: &dyn DynStruct);
    /// Replaces the list's items with clones of `items` (all of the element type).
    fn set_items(&mut self, items: Vec<Box<dyn DynStruct>>);
}

/// Static access to a type's table.
pub trait ConfigStruct: DynStruct + Default + Clone {
    const DESC: &'static StructDesc;
}

impl<T: ConfigStruct> DynList for Vec<T> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn get(&self, i: usize) -> &dyn DynStruct {
        &self[i]
    }
    fn get_mut(&mut self, i: usize) -> &mut dyn DynStruct {
        &mut self[i]
    }
    fn push_default(&mut self) {
        self.push(T::default());
    }
    fn reserve_exact(&mut self, additional: usize) {
        Vec::reserve_exact(self, additional)
    }
    fn truncate(&mut self, n: usize) {
        Vec::truncate(self, n)
    }
    fn clear(&mut self) {
        Vec::clear(self)
    }
    fn elem_desc(&self) -> &'static StructDesc {
        T::DESC
    }
    fn push_clone(&mut self, item: &dyn DynStruct) {
        if let Some(t) = item.as_any().downcast_ref::<T>() {
            self.push(t.clone());
        }
    }
    fn set_items(&mut self, items: Vec<Box<dyn DynStruct>>) {
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            if let Some(t) = it.as_any().downcast_ref::<T>() {
                out.push(t.clone());
            }
        }
        *self = out;
    }
}

/// Maps a Rust field type to its accessor kind.
pub trait AsField {
    fn as_mut(&mut self) -> FieldMut<'_>;
    fn as_ref(&self) -> FieldRef<'_>;
    fn is_zero(&self) -> bool;
}

impl AsField for String {
    fn as_mut(&mut self) -> FieldMut<'_> {
        FieldMut::Str(self)
    }
    fn as_ref(&self) -> FieldRef<'_> {
        FieldRef::Str(self)
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}
impl AsField for Option<String> {
    fn as_mut(&mut self) -> FieldMut<'_> {
        FieldMut::OptStr(self)
    }
    fn as_ref(&self) -> FieldRef<'_> {
        FieldRef::OptStr(self)
    }
    fn is_zero(&self) -> bool {
        self.is_none()
    }
}
impl AsField for i64 {
    fn as_mut(&mut self) -> FieldMut<'_> {
        FieldMut::Int(self)
    }
    fn as_ref(&self) -> FieldRef<'_> {
        FieldRef::Int(*self)
    }
    fn is_zero(&self) -> bool {
        *self == 0
    }
}
impl AsField for Option<i64> {
    fn as_mut(&mut self) -> FieldMut<'_> {
        FieldMut::OptInt(self)
    }
    fn as_ref(&self) -> FieldRef<'_> {
        FieldRef::OptInt(*self)
    }
    fn is_zero(&self) -> bool {
        self.is_none()
    }
}
impl AsField for Option<bool> {
    fn as_mut(&mut self) -> FieldMut<'_> {
        FieldMut::OptBool(self)
    }
    fn as_ref(&self) -> FieldRef<'_> {
        FieldRef::OptBool(*self)
    }
    fn is_zero(&self) -> bool {
        self.is_none()
    }
}
impl AsField for Vec<String> {
    fn as_mut(&mut self) -> FieldMut<'_> {
        FieldMut::StrList(self)
    }
    fn as_ref(&self) -> FieldRef<'_> {
        FieldRef::StrList(self)
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}
impl<T: ConfigStruct> AsField for Vec<T> {
    fn as_mut(&mut self) -> FieldMut<'_> {
        FieldMut::List(self)
    }
    fn as_ref(&self) -> FieldRef<'_> {
        FieldRef::List(self)
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

macro_rules! struct_field {
    ($t:ty) => {
        impl AsField for $t {
            fn as_mut(&mut self) -> FieldMut<'_> {
                FieldMut::Struct(self)
            }
            fn as_ref(&self) -> FieldRef<'_> {
                FieldRef::Struct(self)
            }
            fn is_zero(&self) -> bool {
                DynStruct::is_zero(self)
            }
        }
    };
}

/// Declares a config type: the Rust struct, its field table and its accessors.
macro_rules! config_type {
    (
        $(#[doc = $doc:literal])*
        $name:ident = $go:literal since $since:ident {
            $( $field:ident : $fty:ty = $fdesc:expr ),* $(,)?
        }
        $(key = |$s:ident| $key:expr)?
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            $( pub $field: $fty, )*
        }

        impl $name {
            pub const FIELDS: &'static [FieldDesc] = &[ $( $fdesc ),* ];
        }

        impl ConfigStruct for $name {
            const DESC: &'static StructDesc = &StructDesc {
                go_name: $go,
                doc: concat!($($doc, "\n"),*),
                fields: $name::FIELDS,
                since: Spec::$since,
            };
        }

        impl DynStruct for $name {
            fn desc(&self) -> &'static StructDesc {
                <$name as ConfigStruct>::DESC
            }
            #[allow(unused_assignments)]
            fn field(&self, i: usize) -> FieldRef<'_> {
                let mut n = 0usize;
                $(
                    if i == n { return AsField::as_ref(&self.$field); }
                    n += 1;
                )*
                unreachable!("field index {i} out of range for {}", $go)
            }
            #[allow(unused_assignments)]
            fn field_mut(&mut self, i: usize) -> FieldMut<'_> {
                let mut n = 0usize;
                $(
                    if i == n { return AsField::as_mut(&mut self.$field); }
                    n += 1;
                )*
                unreachable!("field index {i} out of range for {}", $go)
            }
            fn as_any(&self) -> &dyn Any {
                self
            }
            fn reset(&mut self) {
                *self = Self::default();
            }
            fn clone_box(&self) -> Box<dyn DynStruct> {
                Box::new(self.clone())
            }
            fn assign(&mut self, other: &dyn DynStruct) {
                if let Some(o) = other.as_any().downcast_ref::<Self>() {
                    *self = o.clone();
                }
            }
            $(
                fn key_ref(&self) -> Option<std::borrow::Cow<'_, str>> {
                    let $s = self;
                    Some($key)
                }
            )?
            fn is_zero(&self) -> bool {
                true $( && AsField::is_zero(&self.$field) )*
            }
        }

        struct_field!($name);
    };
}

use Spec::*;

const COMPRESSION: Constraint = Constraint::Enum(&["", "gzip"]);
const HASH: Constraint = Constraint::Pattern("^(sha512-[0-9a-fA-F]{128}|sha256-[0-9a-fA-F]{64})$");
const GUID: Constraint = Constraint::Pattern(
    "^(|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$",
);
const MODE: Constraint = Constraint::Range(0, 0o7777);
/// Filesystem formats of the stable specs (3.7.0-experimental adds `virtiofs`).
pub const FS_FORMATS: &[&str] = &["ext4", "btrfs", "xfs", "swap", "vfat", "none"];
/// RAID levels Ignition accepts.
pub const RAID_LEVELS: &[&str] = &[
    "linear", "raid0", "0", "stripe", "raid1", "1", "mirror", "raid4", "4", "raid5", "5", "raid6",
    "6", "raid10", "10",
];

config_type! {
    /// A whole config.
    Config = "Config" since V3_0 {
        ignition: Ignition = FieldDesc::new("ignition", "types.Ignition",
            "Metadata about the config itself: its spec version, referenced configs, timeouts, TLS and proxy settings.").always(),
        kernel_arguments: KernelArguments = FieldDesc::new("kernelArguments", "types.KernelArguments",
            "Kernel arguments that must or must not be present on the installed system.").since(V3_3),
        passwd: Passwd = FieldDesc::new("passwd", "types.Passwd", "Users and groups to create, change or delete."),
        storage: Storage = FieldDesc::new("storage", "types.Storage",
            "Disks, RAID arrays, encrypted volumes, filesystems, files, directories and links."),
        systemd: Systemd = FieldDesc::new("systemd", "types.Systemd", "systemd units and drop-ins to write, enable, disable or mask."),
    }
}

config_type! {
    /// The `ignition` section.
    Ignition = "Ignition" since V3_0 {
        config: IgnitionConfig = FieldDesc::new("config", "types.IgnitionConfig",
            "Other configs to merge into this one, or one config that replaces it."),
        proxy: Proxy = FieldDesc::new("proxy", "types.Proxy", "Proxies for fetching remote resources.").since(V3_1),
        security: Security = FieldDesc::new("security", "types.Security", "TLS settings for fetching remote resources."),
        timeouts: Timeouts = FieldDesc::new("timeouts", "types.Timeouts", "HTTP timeouts for fetching remote resources."),
        version: String = FieldDesc::new("version", "string",
            "The spec version this config is written against, such as \"3.4.0\".").always(),
    }
}

config_type! {
    /// Referenced configs.
    IgnitionConfig = "IgnitionConfig" since V3_0 {
        merge: Vec<Resource> = FieldDesc::new("merge", "[]types.Resource",
            "Configs to fetch and merge into this one, in order; later ones win.")
            .elem("types.Resource").shape30(Shape30::ConfigReference),
        replace: Resource = FieldDesc::new("replace", "types.Resource",
            "A config to fetch and use instead of this one.").shape30(Shape30::ConfigReference),
    }
}

config_type! {
    /// Proxy settings.
    Proxy = "Proxy" since V3_1 {
        http_proxy: Option<String> = FieldDesc::new("httpProxy", "string",
            "Proxy URL (http or https) for plain HTTP requests."),
        https_proxy: Option<String> = FieldDesc::new("httpsProxy", "string",
            "Proxy URL (http or https) for HTTPS requests."),
        no_proxy: Vec<String> = FieldDesc::new("noProxy", "[]types.NoProxyItem",
            "Hosts, domains, IP addresses or CIDR ranges to reach without a proxy; \"*\" disables proxying.")
            .elem("types.NoProxyItem"),
    }
}

config_type! {
    /// Security settings.
    Security = "Security" since V3_0 {
        tls: Tls = FieldDesc::new("tls", "types.TLS", "TLS settings."),
    }
}

config_type! {
    /// TLS settings.
    Tls = "TLS" since V3_0 {
        certificate_authorities: Vec<Resource> = FieldDesc::new("certificateAuthorities", "[]types.Resource",
            "PEM bundles of extra certificate authorities to trust for HTTPS, besides the system ones.")
            .elem("types.Resource").shape30(Shape30::CaReference),
    }
}

config_type! {
    /// HTTP timeouts.
    Timeouts = "Timeouts" since V3_0 {
        http_response_headers: Option<i64> = FieldDesc::new("httpResponseHeaders", "int",
            "Seconds to wait for a server's response headers; 0 means no limit. Default 10."),
        http_total: Option<i64> = FieldDesc::new("httpTotal", "int",
            "Seconds allowed for a whole fetch including retries; 0 means no limit. Default 0."),
    }
}

config_type! {
    /// Something to fetch: a config, a CA bundle, file contents, a key file.
    Resource = "Resource" since V3_0 {
        compression: Option<String> = FieldDesc::new("compression", "string",
            "How the fetched data is compressed: \"gzip\", or empty for none. Not allowed with s3 sources.")
            .constraint(COMPRESSION),
        http_headers: Vec<HttpHeader> = FieldDesc::new("httpHeaders", "types.HTTPHeaders",
            "Extra HTTP headers for http and https sources.").elem("types.HTTPHeader").since(V3_1),
        source: Option<String> = FieldDesc::new("source", "string",
            "Where to fetch from: an http, https, tftp, s3, arn, gs or data URL."),
        verification: Verification = FieldDesc::new("verification", "types.Verification",
            "How to check the fetched data."),
    }
    key = |r| r.source.as_deref().unwrap_or("").into()
}

config_type! {
    /// An HTTP header.
    HttpHeader = "HTTPHeader" since V3_1 {
        name: String = FieldDesc::new("name", "string", "The header's name.").always(),
        value: Option<String> = FieldDesc::new("value", "string",
            "The header's value. Left out in a merged config, it removes the header set by the parent."),
    }
    key = |h| h.name.as_str().into()
}

config_type! {
    /// Verification of fetched data.
    Verification = "Verification" since V3_0 {
        hash: Option<String> = FieldDesc::new("hash", "string",
            "Expected hash of the (decompressed) data as <function>-<hex digest>; function sha512 or sha256 (sha256 since 3.1.0).")
            .constraint(HASH),
    }
}

config_type! {
    /// Kernel arguments.
    KernelArguments = "KernelArguments" since V3_3 {
        should_exist: Vec<String> = FieldDesc::new("shouldExist", "[]types.KernelArgument",
            "Arguments to add if missing.").elem("types.KernelArgument"),
        should_not_exist: Vec<String> = FieldDesc::new("shouldNotExist", "[]types.KernelArgument",
            "Arguments to remove if present.").elem("types.KernelArgument"),
    }
}

config_type! {
    /// Users and groups.
    Passwd = "Passwd" since V3_0 {
        groups: Vec<PasswdGroup> = FieldDesc::new("groups", "[]types.PasswdGroup", "Groups to create or change.")
            .elem("types.PasswdGroup"),
        users: Vec<PasswdUser> = FieldDesc::new("users", "[]types.PasswdUser", "Users to create or change.")
            .elem("types.PasswdUser"),
    }
}

config_type! {
    /// A group.
    PasswdGroup = "PasswdGroup" since V3_0 {
        gid: Option<i64> = FieldDesc::new("gid", "int", "The group ID; allocated automatically if left out."),
        name: String = FieldDesc::new("name", "string", "The group's name.").always(),
        password_hash: Option<String> = FieldDesc::new("passwordHash", "string", "The group's hashed password."),
        should_exist: Option<bool> = FieldDesc::new("shouldExist", "bool",
            "Whether the group should exist; false deletes it. Default true.").since(V3_2),
        system: Option<bool> = FieldDesc::new("system", "bool", "Create a system group (ID from the system range)."),
    }
    key = |g| g.name.as_str().into()
}

config_type! {
    /// A user.
    PasswdUser = "PasswdUser" since V3_0 {
        gecos: Option<String> = FieldDesc::new("gecos", "string", "The GECOS (comment) field."),
        groups: Vec<String> = FieldDesc::new("groups", "[]types.Group", "Supplementary groups.").elem("types.Group"),
        home_dir: Option<String> = FieldDesc::new("homeDir", "string", "The home directory; default /home/<name>."),
        name: String = FieldDesc::new("name", "string", "The user's name.").always(),
        no_create_home: Option<bool> = FieldDesc::new("noCreateHome", "bool", "Do not create the home directory."),
        no_log_init: Option<bool> = FieldDesc::new("noLogInit", "bool", "Do not add the user to the lastlog and faillog databases."),
        no_user_group: Option<bool> = FieldDesc::new("noUserGroup", "bool", "Do not create a group named after the user."),
        password_hash: Option<String> = FieldDesc::new("passwordHash", "string", "The user's hashed password (crypt(3) format)."),
        primary_group: Option<String> = FieldDesc::new("primaryGroup", "string", "The user's primary group."),
        ssh_authorized_keys: Vec<String> = FieldDesc::new("sshAuthorizedKeys", "[]types.SSHAuthorizedKey",
            "SSH public keys allowed to log in as this user.").elem("types.SSHAuthorizedKey"),
        shell: Option<String> = FieldDesc::new("shell", "string", "The login shell."),
        should_exist: Option<bool> = FieldDesc::new("shouldExist", "bool",
            "Whether the user should exist; false deletes it. Default true.").since(V3_2),
        system: Option<bool> = FieldDesc::new("system", "bool", "Create a system user (ID from the system range)."),
        uid: Option<i64> = FieldDesc::new("uid", "int", "The user ID; allocated automatically if left out."),
    }
    key = |u| u.name.as_str().into()
}

config_type! {
    /// Storage.
    Storage = "Storage" since V3_0 {
        directories: Vec<Directory> = FieldDesc::new("directories", "[]types.Directory", "Directories to create.")
            .elem("types.Directory"),
        disks: Vec<Disk> = FieldDesc::new("disks", "[]types.Disk", "Disks to partition.").elem("types.Disk"),
        files: Vec<File> = FieldDesc::new("files", "[]types.File", "Files to write.").elem("types.File"),
        filesystems: Vec<Filesystem> = FieldDesc::new("filesystems", "[]types.Filesystem",
            "Filesystems to create or reuse.").elem("types.Filesystem"),
        links: Vec<Link> = FieldDesc::new("links", "[]types.Link", "Symbolic and hard links to create.").elem("types.Link"),
        luks: Vec<Luks> = FieldDesc::new("luks", "[]types.Luks", "LUKS2 encrypted volumes.").elem("types.Luks").since(V3_2),
        raid: Vec<Raid> = FieldDesc::new("raid", "[]types.Raid", "Software RAID arrays.").elem("types.Raid"),
    }
}

config_type! {
    /// Owner by ID or name.
    NodeUser = "NodeUser" since V3_0 {
        id: Option<i64> = FieldDesc::new("id", "int", "The owning user's ID."),
        name: Option<String> = FieldDesc::new("name", "string", "The owning user's name, looked up in the target system."),
    }
}

config_type! {
    /// Group by ID or name.
    NodeGroup = "NodeGroup" since V3_0 {
        id: Option<i64> = FieldDesc::new("id", "int", "The owning group's ID."),
        name: Option<String> = FieldDesc::new("name", "string", "The owning group's name, looked up in the target system."),
    }
}

const PATH_DOC: &str = "The absolute path.";
const OVERWRITE_DOC: &str = "Whether to delete whatever already exists at the path. Default false.";

config_type! {
    /// A directory.
    Directory = "Directory" since V3_0 {
        group: NodeGroup = FieldDesc::new("group", "types.NodeGroup", "The owning group."),
        overwrite: Option<bool> = FieldDesc::new("overwrite", "bool", OVERWRITE_DOC),
        path: String = FieldDesc::new("path", "string", PATH_DOC).always(),
        user: NodeUser = FieldDesc::new("user", "types.NodeUser", "The owner."),
        mode: Option<i64> = FieldDesc::new("mode", "int",
            "Permission bits as a decimal number (0755 is 493); default 0755. setuid/setgid/sticky need spec 3.6.0.")
            .constraint(MODE),
    }
    key = |d| d.path.as_str().into()
}

config_type! {
    /// A file.
    File = "File" since V3_0 {
        group: NodeGroup = FieldDesc::new("group", "types.NodeGroup", "The owning group."),
        overwrite: Option<bool> = FieldDesc::new("overwrite", "bool", OVERWRITE_DOC),
        path: String = FieldDesc::new("path", "string", PATH_DOC).always(),
        user: NodeUser = FieldDesc::new("user", "types.NodeUser", "The owner."),
        append: Vec<Resource> = FieldDesc::new("append", "[]types.Resource",
            "Fragments to append to the file, in order.").elem("types.Resource").shape30(Shape30::FileContents).append(),
        contents: Resource = FieldDesc::new("contents", "types.Resource",
            "The file's contents. Without a source, an empty file is created if none exists.")
            .shape30(Shape30::FileContents),
        mode: Option<i64> = FieldDesc::new("mode", "int",
            "Permission bits as a decimal number (0644 is 420); default 0644. setuid/setgid/sticky need spec 3.6.0.")
            .constraint(MODE),
    }
    key = |f| f.path.as_str().into()
}

config_type! {
    /// A link.
    Link = "Link" since V3_0 {
        group: NodeGroup = FieldDesc::new("group", "types.NodeGroup", "The owning group (symbolic links only)."),
        overwrite: Option<bool> = FieldDesc::new("overwrite", "bool", OVERWRITE_DOC),
        path: String = FieldDesc::new("path", "string", PATH_DOC).always(),
        user: NodeUser = FieldDesc::new("user", "types.NodeUser", "The owner (symbolic links only)."),
        hard: Option<bool> = FieldDesc::new("hard", "bool", "Make a hard link instead of a symbolic one."),
        target: Option<String> = FieldDesc::new("target", "string", "What the link points to.")
            .quirk(Quirk::ValueStrUntil3_2),
    }
    key = |l| l.path.as_str().into()
}

config_type! {
    /// A disk and its partitions.
    Disk = "Disk" since V3_0 {
        device: String = FieldDesc::new("device", "string", "The disk's device path, typically /dev/disk/by-*.").always(),
        partitions: Vec<Partition> = FieldDesc::new("partitions", "[]types.Partition", "The partitions.")
            .elem("types.Partition"),
        wipe_table: Option<bool> = FieldDesc::new("wipeTable", "bool", "Erase the partition table first."),
    }
    key = |d| d.device.as_str().into()
}

config_type! {
    /// A GPT partition.
    Partition = "Partition" since V3_0 {
        guid: Option<String> = FieldDesc::new("guid", "string", "The partition's unique GUID.").constraint(GUID),
        label: Option<String> = FieldDesc::new("label", "string", "The partition name (PARTLABEL), at most 36 characters."),
        number: i64 = FieldDesc::new("number", "int", "The partition number; 0 takes the next free one."),
        resize: Option<bool> = FieldDesc::new("resize", "bool",
            "Resize an existing partition that matches in everything but size.").since(V3_2),
        should_exist: Option<bool> = FieldDesc::new("shouldExist", "bool",
            "Whether the partition should exist. Default true."),
        size_mib: Option<i64> = FieldDesc::new("sizeMiB", "int", "Size in MiB; 0 means as large as possible."),
        start_mib: Option<i64> = FieldDesc::new("startMiB", "int", "Start in MiB; 0 means the start of the largest free block."),
        type_guid: Option<String> = FieldDesc::new("typeGuid", "string",
            "The partition type GUID; default Linux filesystem data.").constraint(GUID),
        wipe_partition_entry: Option<bool> = FieldDesc::new("wipePartitionEntry", "bool",
            "Replace an existing partition that does not match instead of failing."),
    }
    key = |p| if p.number != 0 {
        format!("number:{}", p.number).into()
    } else if let Some(l) = &p.label {
        format!("label:{l}").into()
    } else {
        "".into()
    }
}

config_type! {
    /// A filesystem.
    Filesystem = "Filesystem" since V3_0 {
        device: String = FieldDesc::new("device", "string", "The device to put the filesystem on.").always(),
        format: Option<String> = FieldDesc::new("format", "string", "ext4, btrfs, xfs, vfat, swap or none (none since 3.3.0).")
            .constraint(Constraint::Enum(FS_FORMATS)),
        label: Option<String> = FieldDesc::new("label", "string", "The filesystem label."),
        mount_options: Vec<String> = FieldDesc::new("mountOptions", "[]types.MountOption",
            "Options for mounting it during provisioning.").elem("types.MountOption").since(V3_1).append(),
        options: Vec<String> = FieldDesc::new("options", "[]types.FilesystemOption",
            "Extra arguments for mkfs.").elem("types.FilesystemOption").append(),
        path: Option<String> = FieldDesc::new("path", "string",
            "Where to mount it during provisioning, relative to the target root."),
        uuid: Option<String> = FieldDesc::new("uuid", "string", "The filesystem UUID."),
        wipe_filesystem: Option<bool> = FieldDesc::new("wipeFilesystem", "bool",
            "Erase the device before creating the filesystem instead of reusing a matching one."),
    }
    key = |f| f.device.as_str().into()
}

config_type! {
    /// A LUKS2 volume.
    Luks = "Luks" since V3_2 {
        cex: Cex = FieldDesc::new("cex", "types.Cex", "IBM Z Crypto Express secure keys.").since(V3_5),
        clevis: Clevis = FieldDesc::new("clevis", "types.Clevis", "Automatic unlocking with clevis.")
            .quirk(Quirk::PtrStructIn3_2),
        device: Option<String> = FieldDesc::new("device", "string", "The device to encrypt."),
        discard: Option<bool> = FieldDesc::new("discard", "bool", "Allow discards through the encryption layer.").since(V3_4),
        key_file: Resource = FieldDesc::new("keyFile", "types.Resource",
            "Where to fetch the key from; a random key is generated if left out."),
        label: Option<String> = FieldDesc::new("label", "string", "The LUKS label, at most 47 characters."),
        name: String = FieldDesc::new("name", "string", "The name of the opened device under /dev/mapper.").always(),
        open_options: Vec<String> = FieldDesc::new("openOptions", "[]types.OpenOption",
            "Extra arguments for opening the volume.").elem("types.OpenOption").since(V3_4),
        options: Vec<String> = FieldDesc::new("options", "[]types.LuksOption",
            "Extra arguments for luksFormat.").elem("types.LuksOption").append(),
        uuid: Option<String> = FieldDesc::new("uuid", "string", "The LUKS UUID."),
        wipe_volume: Option<bool> = FieldDesc::new("wipeVolume", "bool", "Erase the device instead of reusing an existing volume."),
    }
    key = |l| l.name.as_str().into()
}

config_type! {
    /// Crypto Express settings.
    Cex = "Cex" since V3_5 {
        enabled: Option<bool> = FieldDesc::new("enabled", "bool", "Use a CEX secure key."),
    }
}

config_type! {
    /// Clevis bindings.
    Clevis = "Clevis" since V3_2 {
        custom: ClevisCustom = FieldDesc::new("custom", "types.ClevisCustom",
            "A clevis pin and config passed through as they are.").quirk(Quirk::PtrStructIn3_2),
        tang: Vec<Tang> = FieldDesc::new("tang", "[]types.Tang", "Tang servers.").elem("types.Tang"),
        threshold: Option<i64> = FieldDesc::new("threshold", "int", "How many pins must succeed. Default 1."),
        tpm2: Option<bool> = FieldDesc::new("tpm2", "bool", "Bind to the TPM2."),
    }
}

config_type! {
    /// A custom clevis binding.
    ClevisCustom = "ClevisCustom" since V3_2 {
        config: Option<String> = FieldDesc::new("config", "string", "The pin's JSON config.")
            .quirk(Quirk::ValueStrIn3_2),
        needs_network: Option<bool> = FieldDesc::new("needsNetwork", "bool", "Whether unlocking needs the network."),
        pin: Option<String> = FieldDesc::new("pin", "string", "The clevis pin.").quirk(Quirk::ValueStrIn3_2),
    }
}

config_type! {
    /// A tang server.
    Tang = "Tang" since V3_2 {
        advertisement: Option<String> = FieldDesc::new("advertisement", "string",
            "The server's advertisement (JSON), for binding without the network.").since(V3_4),
        thumbprint: Option<String> = FieldDesc::new("thumbprint", "string", "Thumbprint of a trusted signing key."),
        url: String = FieldDesc::new("url", "string", "The server's URL.").always(),
    }
    key = |t| t.url.as_str().into()
}

config_type! {
    /// A software RAID array.
    Raid = "Raid" since V3_0 {
        devices: Vec<String> = FieldDesc::new("devices", "[]types.Device", "Member devices.").elem("types.Device"),
        level: Option<String> = FieldDesc::new("level", "string", "The RAID level, such as raid1.")
            .quirk(Quirk::ValueStrUntil3_2).constraint(Constraint::Enum(RAID_LEVELS)),
        name: String = FieldDesc::new("name", "string", "The array's name (/dev/md/<name>).").always(),
        options: Vec<String> = FieldDesc::new("options", "[]types.RaidOption", "Extra arguments for mdadm.")
            .elem("types.RaidOption").append(),
        spares: Option<i64> = FieldDesc::new("spares", "int", "How many of the devices are spares."),
    }
    key = |r| r.name.as_str().into()
}

config_type! {
    /// systemd settings.
    Systemd = "Systemd" since V3_0 {
        units: Vec<Unit> = FieldDesc::new("units", "[]types.Unit", "Units.").elem("types.Unit"),
    }
}

config_type! {
    /// A systemd unit.
    Unit = "Unit" since V3_0 {
        contents: Option<String> = FieldDesc::new("contents", "string", "The unit file's contents."),
        dropins: Vec<Dropin> = FieldDesc::new("dropins", "[]types.Dropin", "Drop-in files for the unit.").elem("types.Dropin"),
        enabled: Option<bool> = FieldDesc::new("enabled", "bool", "Enable (true) or disable (false) the unit through a preset."),
        mask: Option<bool> = FieldDesc::new("mask", "bool", "Mask the unit (link it to /dev/null)."),
        name: String = FieldDesc::new("name", "string", "The unit's name with its type suffix, such as foo.service.").always(),
    }
    key = |u| u.name.as_str().into()
}

config_type! {
    /// A drop-in file.
    Dropin = "Dropin" since V3_0 {
        contents: Option<String> = FieldDesc::new("contents", "string", "The drop-in's contents."),
        name: String = FieldDesc::new("name", "string", "The drop-in's file name, ending in .conf.").always(),
    }
    key = |d| d.name.as_str().into()
}

impl Config {
    /// An empty config of the internal version.
    pub fn empty() -> Self {
        let mut c = Config::default();
        c.ignition.version = Spec::LATEST.as_str().to_string();
        c
    }
}

impl Resource {
    pub fn source_str(&self) -> Option<&str> {
        self.source.as_deref().filter(|s| !s.is_empty())
    }

    /// Whether fetching it needs the network: it has a source that is not a `data:` URL.
    pub fn is_remote(&self) -> bool {
        self.source_str().is_some_and(is_remote_source)
    }
}

/// Whether a source needs the network: not empty and not a `data:` URL (any case).
pub fn is_remote_source(source: &str) -> bool {
    !source.is_empty()
        && !source
            .split_once(':')
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("data"))
}

/// Index of the field named `json` in a table.
pub fn field_index(desc: &StructDesc, json: &str) -> Option<usize> {
    desc.fields.iter().position(|f| f.json == json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_accessors() {
        fn check(s: &mut dyn DynStruct, seen: &mut Vec<&'static str>) {
            let desc = s.desc();
            if seen.contains(&desc.go_name) {
                return;
            }
            seen.push(desc.go_name);
            for i in 0..desc.fields.len() {
                let f = &desc.fields[i];
                match s.field_mut(i) {
                    FieldMut::Struct(inner) => {
                        assert!(f.go_type.starts_with("types."), "{}", f.json);
                        check(inner, seen);
                    }
                    FieldMut::List(list) => {
                        assert!(!f.elem_go_type.is_empty(), "{}", f.json);
                        list.push_default();
                        check(list.get_mut(0), seen);
                    }
                    FieldMut::StrList(_) => assert!(!f.elem_go_type.is_empty(), "{}", f.json),
                    FieldMut::Int(_) | FieldMut::OptInt(_) => assert_eq!(f.go_type, "int"),
                    FieldMut::OptBool(_) => assert_eq!(f.go_type, "bool"),
                    FieldMut::Str(_) | FieldMut::OptStr(_) => assert_eq!(f.go_type, "string"),
                }
            }
        }
        let mut seen = Vec::new();
        check(&mut Config::default(), &mut seen);
        assert!(seen.len() > 25);
    }

    #[test]
    fn fields_are_in_go_order() {
        // Ignition's generated types list fields alphabetically by Go name (embedded structs
        // first for files, directories and links); reports and marshalling follow that order.
        for desc in [Storage::DESC, Luks::DESC, Partition::DESC, Filesystem::DESC] {
            let names: Vec<String> = desc.fields.iter().map(|f| f.json.to_lowercase()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "{}", desc.go_name);
        }
    }
}
