//! An append-only file of JSON records, one per line, each append written and fdatasync-ed
//! before it returns: the metadata log and a node's placement log.
//!
//! Invariants: the file is a sequence of complete lines, each one record. A crash can tear only
//! the last line; opening stops at the first line that is incomplete or does not parse and cuts
//! the file there, which loses only a change that was never acknowledged. An append that fails
//! is cut back off; if even that fails the log refuses every later append (a torn line left in
//! the middle would end the next replay there and silently drop what followed it).
//!
//! JSON lines keep the files inspectable by operators. Blocking std::fs: callers run it on the
//! blocking-thread pool.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::runtime::file::{replace_file_now, sync_dir_now};

pub struct JsonLinesLog {
    path: PathBuf,
    file: File,
    /// Set when a failed append could not be cut back off (see the module docs).
    poisoned: bool,
}

impl JsonLinesLog {
    /// Opens (creating it and its directory if needed) the log at `path` and returns it with every
    /// valid record, in order.
    pub fn open<R: DeserializeOwned>(path: &Path) -> io::Result<(JsonLinesLog, Vec<R>)> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| with_path(e, "creating", dir))?;
        let mut records = Vec::new();
        let mut valid_len = 0u64;
        let existed = path.exists();
        if existed {
            let f = File::open(path).map_err(|e| with_path(e, "opening", path))?;
            let mut reader = BufReader::new(f);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| with_path(e, "reading", path))?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                match serde_json::from_slice::<R>(&line) {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        tracing::warn!("{}: stopping replay at a bad record: {e}", path.display());
                        break;
                    }
                }
                valid_len += n as u64;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| with_path(e, "opening", path))?;
        if !existed {
            // The new file's name must survive a crash as surely as the records written to it.
            sync_dir(dir)?;
        }
        // Drop a torn or corrupt tail so new records follow the last good one.
        if file.metadata()?.len() != valid_len {
            file.set_len(valid_len)
                .map_err(|e| with_path(e, "truncating", path))?;
        }
        let log = JsonLinesLog {
            path: path.to_path_buf(),
            file,
            poisoned: false,
        };
        Ok((log, records))
    }

    /// Appends records durably (written and fdatasync-ed) before returning.
    pub fn append<T: Serialize>(&mut self, records: &[T]) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other(format!(
                "{}: an earlier failed write could not be undone; restart to recover",
                self.path.display()
            )));
        }
        let buf = encode(records)?;
        // On any failure, cut the file back to where it was (see the module docs).
        let before = self
            .file
            .metadata()
            .map_err(|e| with_path(e, "reading size of", &self.path))?
            .len();
        let written = self
            .file
            .write_all(&buf)
            .map_err(|e| with_path(e, "writing", &self.path))
            .and_then(|()| {
                self.file
                    .sync_data()
                    .map_err(|e| with_path(e, "syncing", &self.path))
            });
        if written.is_err() && self.file.set_len(before).is_err() {
            self.poisoned = true;
        }
        written
    }

    /// Replaces the whole log with `records` (a snapshot of the current state): written to
    /// `<name>.tmp`, fdatasync-ed, renamed over the log, and the directory synced, so a crash at
    /// any point leaves either the old log or the new one, never a mix.
    pub fn rewrite<T: Serialize>(&mut self, records: &[T]) -> io::Result<()> {
        replace_file_now(&self.path, &encode(records)?)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| with_path(e, "opening", &self.path))?;
        self.poisoned = false;
        Ok(())
    }
}

fn encode<T: Serialize>(records: &[T]) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r).map_err(io::Error::other)?;
        buf.push(b'\n');
    }
    Ok(buf)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    sync_dir_now(dir).map_err(|e| with_path(e, "syncing", dir))
}

fn with_path(e: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}
