//! Sealing and opening secrets at rest.
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce per message. The caller
//! passes associated data naming what the secret belongs to, so a ciphertext
//! copied onto another row fails to open instead of yielding wrong data.
//! Every ciphertext is stored with the id of the key that sealed it, so the
//! key file can hold several keys while a new one is rolled out: the first
//! key seals, all of them open.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("no encryption key with id `{0}` is configured")]
    UnknownKey(String),
    /// Wrong key, wrong associated data, or a damaged ciphertext; AEAD cannot
    /// tell these apart, and neither should an attacker.
    #[error("the secret could not be decrypted (wrong key, moved or damaged)")]
    Undecryptable,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot create key file {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("key file {path}, line {line}: {message}")]
    Malformed { path: String, line: usize, message: String },
}

/// A secret sealed for storage: the key id and `nonce || ciphertext || tag`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed {{ key_id: {}, {} bytes }}", self.key_id, self.bytes.len())
    }
}

/// The master keys: the first one seals, every one can open.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    ciphers: HashMap<String, XChaCha20Poly1305>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring {{ current: {}, keys: {} }}", self.current, self.ciphers.len())
    }
}

impl Keyring {
    /// Builds a keyring from `(id, key)` pairs; the first seals.
    pub fn new(keys: Vec<(String, [u8; KEY_LEN])>) -> Option<Keyring> {
        let current = keys.first()?.0.clone();
        let ciphers =
            keys.into_iter().map(|(id, key)| (id, XChaCha20Poly1305::new(&Key::from(key)))).collect();
        Some(Keyring { current, ciphers })
    }

    /// A keyring with one fresh random key, for tests and first runs.
    pub fn generate() -> Keyring {
        let (id, key) = fresh_key();
        Keyring::new(vec![(id, *key)]).expect("one key")
    }

    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Sealed {
        let cipher = &self.ciphers[&self.current];
        let nonce = XNonce::generate();
        let ciphertext = cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad })
            // Encryption only fails for inputs larger than the cipher's
            // 256 GiB limit, far beyond any form field.
            .expect("plaintext within XChaCha20-Poly1305 limits");
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Sealed { key_id: self.current.clone(), bytes }
    }

    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let cipher =
            self.ciphers.get(&sealed.key_id).ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| CryptoError::Undecryptable)?;
        cipher
            .decrypt(&nonce, Payload { msg: ciphertext, aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Undecryptable)
    }

    /// Reads the key file, creating it with one new key (mode 0600) when it
    /// does not exist. Returns whether it was created, so start-up can say so.
    ///
    /// The file holds one key per line, `<id> <64 hex digits>`; `#` starts a
    /// comment. To rotate, put a new line first: it seals from then on while
    /// the older lines keep opening what they sealed.
    pub fn load_or_create(path: &Path) -> Result<(Keyring, bool), KeyFileError> {
        let shown = path.display().to_string();
        let created = if path.exists() {
            false
        } else {
            let (id, key) = fresh_key();
            let text = format!(
                "# Plugboard encryption keys. Keep this file secret and backed up:\n\
                 # without it, stored credentials cannot be decrypted.\n\
                 # The first key encrypts; all keys decrypt.\n{id} {}\n",
                hex::encode(*key)
            );
            crate::keyfile::write_private(path, text.as_bytes())
                .map_err(|source| KeyFileError::Write { path: shown.clone(), source })?;
            true
        };
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|source| KeyFileError::Read { path: shown.clone(), source })?,
        );
        let keyring = Self::parse(&text).map_err(|(line, message)| KeyFileError::Malformed {
            path: shown.clone(),
            line,
            message,
        })?;
        Ok((keyring, created))
    }

    /// Keys given in configuration: the key file's format, with `;` allowed
    /// between entries.
    pub fn from_config(text: &str) -> Result<Keyring, KeyFileError> {
        let text = Zeroizing::new(text.replace(';', "\n"));
        Self::parse(&text).map_err(|(line, message)| KeyFileError::Malformed {
            path: "PLUGBOARD_ENCRYPTION_KEYS".into(),
            line,
            message,
        })
    }

    fn parse(text: &str) -> Result<Keyring, (usize, String)> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, hex_key) = line
                .split_once(char::is_whitespace)
                .ok_or((i + 1, "expected `<key id> <64 hex digits>`".to_owned()))?;
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            hex::decode_to_slice(hex_key.trim(), key.as_mut())
                .map_err(|_| (i + 1, "the key must be 64 hex digits (32 bytes)".to_owned()))?;
            if keys.iter().any(|(existing, _)| existing == id) {
                return Err((i + 1, format!("key id `{id}` appears twice")));
            }
            keys.push((id.to_owned(), *key));
        }
        Keyring::new(keys).ok_or((0, "the file holds no key".to_owned()))
    }
}

fn fresh_key() -> (String, Zeroizing<[u8; KEY_LEN]>) {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(key.as_mut()).expect("the operating system's random source");
    let mut id = [0u8; 4];
    getrandom::fill(&mut id).expect("the operating system's random source");
    (format!("k{}", hex::encode(id)), key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let keys = Keyring::generate();
        let sealed = keys.seal(b"hunter2", b"connection:1");
        assert_eq!(&*keys.open(&sealed, b"connection:1").unwrap(), b"hunter2");
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let keys = Keyring::generate();
        let a = keys.seal(b"hunter2", b"x");
        let b = keys.seal(b"hunter2", b"x");
        assert_ne!(a.bytes, b.bytes);
        assert!(!a.bytes.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn other_associated_data_fails() {
        let keys = Keyring::generate();
        let sealed = keys.seal(b"hunter2", b"connection:1");
        assert_eq!(keys.open(&sealed, b"connection:2").unwrap_err(), CryptoError::Undecryptable);
    }

    #[test]
    fn truncated_or_flipped_fails() {
        let keys = Keyring::generate();
        let sealed = keys.seal(b"hunter2", b"a");
        for len in [0, 10, NONCE_LEN, sealed.bytes.len() - 1] {
            let cut = Sealed { key_id: sealed.key_id.clone(), bytes: sealed.bytes[..len].to_vec() };
            assert_eq!(keys.open(&cut, b"a").unwrap_err(), CryptoError::Undecryptable);
        }
        let mut flipped = sealed.clone();
        flipped.bytes[NONCE_LEN + 1] ^= 1;
        assert_eq!(keys.open(&flipped, b"a").unwrap_err(), CryptoError::Undecryptable);
    }

    #[test]
    fn wrong_key_fails_and_unknown_id_is_named() {
        let sealed = Keyring::generate().seal(b"hunter2", b"a");
        let other = Keyring::generate();
        assert!(matches!(other.open(&sealed, b"a"), Err(CryptoError::UnknownKey(_))));
        let same_id = Keyring::new(vec![(sealed.key_id.clone(), [7; 32])]).unwrap();
        assert_eq!(same_id.open(&sealed, b"a").unwrap_err(), CryptoError::Undecryptable);
    }

    #[test]
    fn rotation_keeps_old_keys_opening() {
        let old =
            Keyring::parse("old 0000000000000000000000000000000000000000000000000000000000000001\n").unwrap();
        let sealed = old.seal(b"v", b"a");
        let rotated = Keyring::parse(
            "# comment\nnew 0000000000000000000000000000000000000000000000000000000000000002\n\
             old 0000000000000000000000000000000000000000000000000000000000000001\n",
        )
        .unwrap();
        assert_eq!(rotated.current_key_id(), "new");
        assert_eq!(&*rotated.open(&sealed, b"a").unwrap(), b"v");
        assert_eq!(rotated.seal(b"v", b"a").key_id, "new");
    }

    #[test]
    fn malformed_key_file_names_the_line() {
        assert_eq!(Keyring::parse("# c\nabc 12\n").unwrap_err().0, 2);
        assert!(Keyring::parse("# only a comment\n").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption.key");
        let (first, created) = Keyring::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (second, created) = Keyring::load_or_create(&path).unwrap();
        assert!(!created);
        let sealed = first.seal(b"v", b"a");
        assert_eq!(&*second.open(&sealed, b"a").unwrap(), b"v");
    }
}
