//! The data folder and the SQLite files in it hold every credential (sealed)
//! beside the keys that open them: only their owner may read them.

use std::io;
use std::path::Path;

/// Creates `dir` and any missing parents, readable by their owner only.
/// A folder that already exists is left as the operator made it.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    // mkdir's mode is reduced by the umask, which may be anything: set it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates an empty SQLite database file readable by its owner only, before
/// SQLite opens it. SQLite gives the -wal and -shm files it creates the
/// database file's permissions, so they are private too. An existing file is
/// left alone, with a warning if others can read it.
pub fn create_private_database(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                // As for folders: open's mode is reduced by the umask.
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            warn_if_shared(path);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the database file can be read by other users (mode {mode:o}); `chmod 600` it and its -wal and -shm files"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
