//! A local source directory packed as Vertex AI's `sourceCodeSpec.inlineSource.sourceArchive`
//! wants it: a gzip-compressed tar, base64-encoded.
//!
//! - **Guarantees:** the archive is reproducible: entries are sorted by path, owners, times and
//!   modes are normalised (0644, or 0755 for executables and directories), so the same tree
//!   packs to the same bytes. Paths inside are relative to the directory.
//! - **Assumptions:** the directory holds source, not data: it is packed in a temporary file
//!   (not held twice in memory while compressing) and then read back to encode it.
//! - **Caveats:** `.git` and `__pycache__` directories are left out; symbolic links are
//!   refused (their targets may lie outside the directory).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The base64 text of a tar.gz of `dir`.
pub fn tar_gz_base64(dir: &Path) -> Result<String, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut entries = Vec::new();
    walk(dir, Path::new(""), &mut entries)?;
    let mut staged = tempfile::tempfile().map_err(|e| format!("cannot create a temporary file: {e}"))?;
    {
        let gz = flate2::write::GzEncoder::new(&mut staged, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        for (relative, is_dir) in &entries {
            let full = dir.join(relative);
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            if *is_dir {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, relative, std::io::empty())
                    .map_err(|e| format!("{}: {e}", full.display()))?;
            } else {
                let mut content = Vec::new();
                std::fs::File::open(&full)
                    .and_then(|mut f| f.read_to_end(&mut content))
                    .map_err(|e| format!("{}: {e}", full.display()))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if executable(&full) { 0o755 } else { 0o644 });
                header.set_size(content.len() as u64);
                tar.append_data(&mut header, relative, content.as_slice())
                    .map_err(|e| format!("{}: {e}", full.display()))?;
            }
        }
        let gz = tar
            .into_inner()
            .map_err(|e| format!("writing the archive: {e}"))?;
        let file = gz.finish().map_err(|e| format!("compressing the archive: {e}"))?;
        file.flush().map_err(|e| format!("writing the archive: {e}"))?;
    }
    staged
        .seek(SeekFrom::Start(0))
        .map_err(|e| format!("reading the archive back: {e}"))?;
    let mut bytes = Vec::new();
    staged
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the archive back: {e}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Every directory and file under `root/relative`, sorted, as (relative path, is a directory).
fn walk(root: &Path, relative: &Path, out: &mut Vec<(PathBuf, bool)>) -> Result<(), String> {
    let here = root.join(relative);
    let mut names: Vec<_> = std::fs::read_dir(&here)
        .map_err(|e| format!("{}: {e}", here.display()))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", here.display()))?;
    names.sort();
    for name in names {
        let path = relative.join(&name);
        let full = root.join(&path);
        let kind = std::fs::symlink_metadata(&full).map_err(|e| format!("{}: {e}", full.display()))?;
        if kind.file_type().is_symlink() {
            return Err(format!(
                "{} is a symbolic link; copy what it points at into the directory",
                full.display()
            ));
        }
        if kind.is_dir() {
            if name == ".git" || name == "__pycache__" {
                continue;
            }
            out.push((path.clone(), true));
            walk(root, &path, out)?;
        } else if kind.is_file() {
            out.push((path, false));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn executable(_: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_packs_reproducibly_and_unpacks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.py"), "root_agent = 1\n").unwrap();
        std::fs::create_dir(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/util.py"), "x = 2\n").unwrap();
        std::fs::create_dir(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/a.pyc"), "junk").unwrap();
        let first = tar_gz_base64(dir.path()).unwrap();
        assert_eq!(first, tar_gz_base64(dir.path()).unwrap(), "reproducible");
        let bytes = base64::engine::general_purpose::STANDARD.decode(first).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let mut paths: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        paths.sort();
        assert_eq!(paths, ["agent.py", "pkg", "pkg/util.py"]);
    }

    #[test]
    fn a_missing_directory_is_named() {
        let error = tar_gz_base64(Path::new("/nonexistent/src")).unwrap_err();
        assert!(error.contains("/nonexistent/src"), "{error}");
    }
}
