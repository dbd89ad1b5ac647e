//! The files a bench run reads: given files as they are, folders walked recursively.
//!
//! In: paths from the command line. Out: files in a stable order (folders' contents sorted by
//! path; hidden names skipped). Fails with [`BenchError`] when a path does not exist or a folder
//! cannot be read. Blocking directory reads only.

use std::path::{Path, PathBuf};

use super::BenchError;

pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BenchError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files)?;
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(BenchError::NoInput(path.clone()));
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), BenchError> {
    let read = |e| BenchError::ReadInput {
        path: dir.to_path_buf(),
        source: e,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read)?;
    entries.sort();
    for path in entries {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_walked_in_order_and_hidden_names_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/inner")).unwrap();
        for f in ["b/inner/z.mp3", "b/a.ogg", ".hidden.ogg", "c.mp4"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let single = root.join("c.mp4");
        let found = expand(&[root.to_path_buf(), single.clone()]).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        let want: Vec<PathBuf> = ["b/a.ogg", "b/inner/z.mp3", "c.mp4", "c.mp4"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(names, want);
        assert!(matches!(
            expand(&[root.join("nope")]),
            Err(BenchError::NoInput(_))
        ));
    }
}
