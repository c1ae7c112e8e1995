//! Files that hold keys: created once, readable by their owner only.

use std::io::Write;
use std::path::Path;

use zeroize::Zeroizing;

/// Writes a new file that only its owner can read (mode 0600), failing if it
/// already exists so that a key is never silently replaced.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The session cookie key: 64 random bytes, created on first run. Returns
/// whether it was created.
pub fn load_or_create_session_key(path: &Path) -> std::io::Result<(Zeroizing<Vec<u8>>, bool)> {
    const LEN: usize = 64;
    let created = !path.exists();
    if created {
        let mut key = Zeroizing::new(vec![0u8; LEN]);
        getrandom::fill(&mut key).map_err(std::io::Error::other)?;
        write_private(path, &key)?;
    }
    let key = Zeroizing::new(std::fs::read(path)?);
    if key.len() < LEN {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} holds {} bytes; a session key needs at least {LEN}", path.display(), key.len()),
        ));
    }
    Ok((key, created))
}
