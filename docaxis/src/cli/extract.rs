//! Writing received attachments into a folder (`docaxis inbox show --extract DIR`).
//!
//! Attachment names come from another agency and are hostile. Invariants:
//! - a file is only ever *created* (`O_CREAT|O_EXCL`, and `O_NOFOLLOW`): nothing existing is
//!   overwritten, and an existing symlink in DIR is never followed;
//! - names are one path component, without control, bidi or invisible format characters
//!   (U+202E could make `gpj.exe` read as `exe.jpg`), not hidden (no leading dot), at most
//!   [`MAX_NAME_BYTES`] bytes with the extension kept;
//! - two attachments with the same name both land: the second gets ` (2)`;
//! - one attachment failing does not stop the others; every failure is reported.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Longest file name written (bytes; most filesystems allow 255).
pub(crate) const MAX_NAME_BYTES: usize = 120;

/// How many ` (n)` suffixes are tried before giving up on a name.
const MAX_SUFFIX: usize = 1000;

/// Whether `c` is invisible or reorders text (Unicode format characters and bidi controls).
fn is_hidden_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}')
}

/// A safe file name for the attachment called `name` (the `index`th, from 1).
pub(crate) fn safe_file_name(name: &str, index: usize) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_hidden_format(*c))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        return format!("attachment-{index}");
    }
    shorten(cleaned, MAX_NAME_BYTES)
}

/// `name` cut to at most `max` bytes on a character boundary, its extension (if short) kept.
fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if name.len() - dot <= 16 && dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    let mut cut = max.saturating_sub(ext.len() + 1); // room for the "~" that marks the cut
    while cut > 0 && !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{ext}", &stem[..cut])
}

/// `name` with ` (n)` before its extension.
fn numbered(name: &str, n: usize) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Creates a new file in `dir`, never following or replacing anything that exists there.
fn create_new(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW).mode(0o640);
    }
    options.open(path)
}

/// Writes `data` as a new file in `dir` named after `name`; the path written.
pub(crate) fn write_attachment(
    dir: &Path,
    name: &str,
    index: usize,
    data: &[u8],
) -> Result<PathBuf, String> {
    let base = safe_file_name(name, index);
    for n in 1..=MAX_SUFFIX {
        let file_name = if n == 1 {
            base.clone()
        } else {
            numbered(&base, n)
        };
        let path = dir.join(&file_name);
        match create_new(&path) {
            Ok(mut file) => {
                let written = file.write_all(data).and_then(|()| file.sync_all());
                return match written {
                    Ok(()) => Ok(path),
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        Err(format!("cannot write {}: {e}", path.display()))
                    }
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
        }
    }
    Err(format!(
        "{MAX_SUFFIX} files named like {base:?} already exist in {}",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_visible_bounded_component() {
        assert_eq!(safe_file_name("../../etc/passwd", 1), "passwd");
        assert_eq!(safe_file_name("a\\..\\b.pdf", 1), "b.pdf");
        assert_eq!(safe_file_name("..", 2), "attachment-2");
        assert_eq!(safe_file_name(".bashrc", 3), "bashrc");
        assert_eq!(safe_file_name("\u{202E}fdp.exe", 1), "fdp.exe");
        assert_eq!(safe_file_name("a\u{200E}b\u{FEFF}.pdf", 1), "ab.pdf");
        assert_eq!(safe_file_name("x\n\ty.txt", 1), "xy.txt");
        assert_eq!(safe_file_name("\u{200B}", 4), "attachment-4");
        let long = format!("{}.pdf", "Quyết định ".repeat(30));
        let short = safe_file_name(&long, 1);
        assert!(short.len() <= MAX_NAME_BYTES, "{}", short.len());
        assert!(short.ends_with("~.pdf"), "{short}");
        assert!(short.starts_with("Quyết định"));
    }

    #[test]
    fn files_are_created_never_overwritten_and_links_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        let a = write_attachment(&dir, "a.txt", 1, b"first").unwrap();
        let b = write_attachment(&dir, "a.txt", 2, b"second").unwrap();
        assert_eq!(a, dir.join("a.txt"));
        assert_eq!(b, dir.join("a (2).txt"));
        assert_eq!(std::fs::read(&a).unwrap(), b"first");
        assert_eq!(std::fs::read(&b).unwrap(), b"second");

        #[cfg(unix)]
        {
            let outside = tmp.path().join("outside.txt");
            std::os::unix::fs::symlink(&outside, dir.join("link.txt")).unwrap();
            let c = write_attachment(&dir, "link.txt", 3, b"third").unwrap();
            assert_eq!(c, dir.join("link (2).txt"));
            assert!(!outside.exists(), "the symlink was not followed");
        }
    }
}
