//! The instance folder: instance metadata in the IMDS layout, the boot and
//! cfn-signal scripts, and what the instance writes back (signals, logs).
//!
//! Every instance has a host folder `<instances_dir>/<instance-id>/`, bind
//! mounted read-write at [`INSTANCE_MOUNT`] in its container:
//!
//! ```text
//! imds/latest/meta-data/ami-id, instance-id, instance-type, local-ipv4,
//!     local-hostname, hostname, placement/availability-zone,
//!     placement/region, security-groups
//! imds/latest/user-data        (only when the launch has user data)
//! bin/boot, bin/cfn-signal     (POSIX sh)
//! signals/<time>-<pid>.signal  (one per cfn-signal call)
//! log/user-data.log, user-data.exit, user-data.started
//! ```
//!
//! Design note: files are small and written with blocking calls from async
//! code, like the store's SQLite calls; `local-ipv4` is written after the
//! container starts and replaced atomically, because `boot` polls for it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::FleetError;

/// Where the instance folder appears inside the container.
pub const INSTANCE_MOUNT: &str = "/var/lib/autopatch";

/// The container's entrypoint script.
pub(crate) const BOOT_SCRIPT: &str = include_str!("scripts/boot.sh");

/// What an instance's metadata says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceMetadata {
    pub(crate) instance_id: String,
    pub(crate) ami_id: String,
    pub(crate) instance_type: String,
    pub(crate) hostname: String,
    pub(crate) availability_zone: String,
    pub(crate) region: String,
    pub(crate) security_groups: Vec<String>,
}

/// A signal file as found in an instance folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignalFile {
    pub(crate) name: String,
    pub(crate) modified: SystemTime,
    pub(crate) text: String,
}

/// One instance's host folder.
#[derive(Debug, Clone)]
pub(crate) struct InstanceFolder {
    path: PathBuf,
}

impl InstanceFolder {
    pub(crate) fn new(instances_dir: &Path, instance_id: &str) -> InstanceFolder {
        InstanceFolder { path: instances_dir.join(instance_id) }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// Writes the metadata, the user data and the scripts into a new folder.
    pub(crate) fn create(
        &self,
        metadata: &InstanceMetadata,
        user_data: Option<&str>,
    ) -> Result<(), FleetError> {
        let meta_data = self.path.join("imds/latest/meta-data");
        let entries = [
            ("ami-id", metadata.ami_id.clone()),
            ("instance-id", metadata.instance_id.clone()),
            ("instance-type", metadata.instance_type.clone()),
            ("local-hostname", metadata.hostname.clone()),
            ("hostname", metadata.hostname.clone()),
            ("placement/availability-zone", metadata.availability_zone.clone()),
            ("placement/region", metadata.region.clone()),
            ("security-groups", metadata.security_groups.join("\n")),
        ];
        for directory in [meta_data.join("placement"), self.path.join("bin")] {
            create_dir_all(&directory)?;
        }
        for directory in ["signals", "log"] {
            create_dir_all(&self.path.join(directory))?;
        }
        for (name, value) in entries {
            write(&meta_data.join(name), value.as_bytes())?;
        }
        if let Some(user_data) = user_data {
            write(&self.path.join("imds/latest/user-data"), user_data.as_bytes())?;
        }
        for (name, script) in
            [("boot", BOOT_SCRIPT), ("cfn-signal", crate::signal::CFN_SIGNAL_SCRIPT)]
        {
            let path = self.path.join("bin").join(name);
            write(&path, script.as_bytes())?;
            set_executable(&path)?;
        }
        Ok(())
    }

    /// Writes `meta-data/local-ipv4`, replacing it atomically.
    pub(crate) fn write_local_ipv4(&self, address: &str) -> Result<(), FleetError> {
        let path = self.path.join("imds/latest/meta-data/local-ipv4");
        let temporary = path.with_file_name(".local-ipv4.tmp");
        write(&temporary, address.as_bytes())?;
        fs_err::rename(&temporary, &path).map_err(|source| io_error(&path, source))
    }

    /// The signal files (`signals/*.signal`), in no particular order; none
    /// when the folder or its `signals/` is absent.
    pub(crate) fn signal_files(&self) -> Result<Vec<SignalFile>, FleetError> {
        let directory = self.path.join("signals");
        let entries = match fs_err::read_dir(&directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io_error(&directory, source)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| io_error(&directory, source))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Temporary files start with a dot; only renamed ones are complete.
            if name.starts_with('.') || !name.ends_with(".signal") {
                continue;
            }
            let path = entry.path();
            let text = match fs_err::read_to_string(&path) {
                Ok(text) => text,
                // Removed since the listing (the folder is being removed).
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(io_error(&path, source)),
            };
            let modified = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .map_err(|source| io_error(&path, source))?;
            files.push(SignalFile { name, modified, text });
        }
        Ok(files)
    }

    /// Marks the instance retained: it left its group (the group was
    /// retained by its stack) and runs on, unmanaged. The marker, a file
    /// `retained` in the folder (visible inside the instance at
    /// `/var/lib/autopatch/retained`), says why; the orphan sweep leaves a
    /// marked instance's container and folder alone.
    pub(crate) fn mark_retained(&self, why: &str) -> Result<(), FleetError> {
        create_dir_all(&self.path)?;
        write(&self.path.join(RETAINED), format!("{why}\n").as_bytes())
    }

    /// Whether the instance was retained ([`InstanceFolder::mark_retained`]).
    pub(crate) fn is_retained(&self) -> bool {
        self.path.join(RETAINED).is_file()
    }

    /// Removes the folder and everything in it; absent is fine.
    pub(crate) fn remove(&self) -> Result<(), FleetError> {
        match fs_err::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(io_error(&self.path, source)),
        }
    }
}

/// The marker file of a retained instance.
const RETAINED: &str = "retained";

fn io_error(path: &Path, source: std::io::Error) -> FleetError {
    FleetError::InstanceFolder { path: path.to_path_buf(), source }
}

fn create_dir_all(path: &Path) -> Result<(), FleetError> {
    fs_err::create_dir_all(path).map_err(|source| io_error(path, source))
}

fn write(path: &Path, contents: &[u8]) -> Result<(), FleetError> {
    fs_err::write(path, contents).map_err(|source| io_error(path, source))
}

fn set_executable(path: &Path) -> Result<(), FleetError> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|source| io_error(path, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> InstanceMetadata {
        InstanceMetadata {
            instance_id: "i-0123456789abcdef0".into(),
            ami_id: "webapp/1.0.0/1".into(),
            instance_type: "m1.large".into(),
            hostname: "i-0123456789abcdef0".into(),
            availability_zone: "local-1a".into(),
            region: "local-1".into(),
            security_groups: vec!["web".into(), "ssh".into()],
        }
    }

    fn read(folder: &InstanceFolder, path: &str) -> String {
        fs_err::read_to_string(folder.path().join(path)).expect("the file exists")
    }

    #[test]
    fn the_folder_has_the_imds_layout_and_the_scripts() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let folder = InstanceFolder::new(directory.path(), "i-0123456789abcdef0");
        folder.create(&metadata(), Some("#!/bin/sh\necho hi\n")).expect("created");
        let meta = "imds/latest/meta-data";
        let found: Vec<(String, String)> = [
            "ami-id",
            "instance-id",
            "instance-type",
            "local-hostname",
            "hostname",
            "placement/availability-zone",
            "placement/region",
            "security-groups",
        ]
        .into_iter()
        .map(|name| (name.to_string(), read(&folder, &format!("{meta}/{name}"))))
        .collect();
        let expected: Vec<(String, String)> = [
            ("ami-id", "webapp/1.0.0/1"),
            ("instance-id", "i-0123456789abcdef0"),
            ("instance-type", "m1.large"),
            ("local-hostname", "i-0123456789abcdef0"),
            ("hostname", "i-0123456789abcdef0"),
            ("placement/availability-zone", "local-1a"),
            ("placement/region", "local-1"),
            ("security-groups", "web\nssh"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        assert_eq!(found, expected);
        assert_eq!(read(&folder, "imds/latest/user-data"), "#!/bin/sh\necho hi\n");
        assert!(!folder.path().join(format!("{meta}/local-ipv4")).exists(), "known only later");
        folder.write_local_ipv4("10.89.0.5").expect("written");
        assert_eq!(read(&folder, &format!("{meta}/local-ipv4")), "10.89.0.5");
        use std::os::unix::fs::PermissionsExt;
        for script in ["bin/boot", "bin/cfn-signal"] {
            let mode =
                fs_err::metadata(folder.path().join(script)).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{script}");
        }
        assert!(folder.signal_files().expect("listed").is_empty());
        folder.remove().expect("removed");
        assert!(!folder.exists());
        folder.remove().expect("absent is fine");
    }

    #[test]
    fn without_user_data_there_is_no_user_data_file() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let folder = InstanceFolder::new(directory.path(), "i-1");
        folder.create(&metadata(), None).expect("created");
        assert!(!folder.path().join("imds/latest/user-data").exists());
    }

    #[test]
    fn only_complete_signal_files_are_listed() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let folder = InstanceFolder::new(directory.path(), "i-1");
        folder.create(&metadata(), None).expect("created");
        let signals = folder.path().join("signals");
        fs_err::write(signals.join("1-2.signal"), "status=SUCCESS\n").expect("write");
        fs_err::write(signals.join(".tmp-3"), "half").expect("write");
        fs_err::write(signals.join("notes.txt"), "other").expect("write");
        let files = folder.signal_files().expect("listed");
        let names: Vec<&str> = files.iter().map(|file| file.name.as_str()).collect();
        assert_eq!(names, ["1-2.signal"]);
        assert_eq!(files[0].text, "status=SUCCESS\n");
    }
}
