//! One file watcher for every reload: TLS files and the tenants file.
//!
//! It watches the files' parent directories, not the files: editors replace
//! files by renaming, and Kubernetes swaps a `..data` symlink, and a watch
//! on the old file would see neither. A change to one of the files, or to a
//! `..`-prefixed entry beside them, counts; the reload's own reads of the
//! files (events too, on Linux) and other files in the directories do not.
//! Changes closer together than the settle time are one call: editors and
//! Kubernetes write several files in a burst.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};

/// The default settle time of [`FileWatcher::watch`].
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(200);

/// Watches a set of files and calls back once per settled burst of
/// changes, on a thread of its own, for as long as it lives: dropping it
/// stops watching.
pub struct FileWatcher {
    trigger: mpsc::Sender<()>,
    _watcher: notify::RecommendedWatcher,
}

/// Watching could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchError {
    /// The directory that could not be watched, when it got that far.
    pub path: Option<PathBuf>,
    /// Why.
    pub detail: String,
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "cannot watch {}: {}", path.display(), self.detail)?,
            None => write!(f, "cannot watch for changes: {}", self.detail)?,
        }
        f.write_str(
            "; check that the directory exists and inotify limits \
             (fs.inotify.max_user_watches) are not exhausted",
        )
    }
}

impl std::error::Error for WatchError {}

impl FileWatcher {
    /// Calls `on_change` after each burst of changes to `files` has been
    /// quiet for `settle`.
    pub fn watch(
        files: impl IntoIterator<Item = PathBuf>,
        settle: Duration,
        mut on_change: impl FnMut() + Send + 'static,
    ) -> Result<Self, WatchError> {
        let files: Vec<PathBuf> = files.into_iter().collect();
        let names: HashSet<OsString> = files
            .iter()
            .filter_map(|p| p.file_name().map(OsString::from))
            .collect();
        let (trigger, changes) = mpsc::channel::<()>();
        let events = trigger.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = event.is_ok_and(|event| {
                    is_change(&event.kind)
                        && event.paths.iter().any(|path| {
                            path.file_name().is_some_and(|name| {
                                names.contains(name) || name.to_string_lossy().starts_with("..")
                            })
                        })
                });
                if relevant {
                    let _ = events.send(());
                }
            })
            .map_err(|e| WatchError {
                path: None,
                detail: e.to_string(),
            })?;
        let dirs: HashSet<&Path> = files
            .iter()
            .map(|path| match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            })
            .collect();
        for dir in dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| WatchError {
                    path: Some(dir.to_owned()),
                    detail: e.to_string(),
                })?;
        }
        std::thread::Builder::new()
            .name("portcullis-watch".to_owned())
            .spawn(move || {
                // Ends when the watcher (and with it every sender) is dropped.
                while changes.recv().is_ok() {
                    loop {
                        match changes.recv_timeout(settle) {
                            Ok(()) => continue,
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    on_change();
                }
            })
            .map_err(|e| WatchError {
                path: None,
                detail: e.to_string(),
            })?;
        Ok(FileWatcher {
            trigger,
            _watcher: watcher,
        })
    }

    /// Calls back now (after the settle time), as if a file changed: for a
    /// `SIGHUP` handler, say.
    pub fn trigger(&self) {
        let _ = self.trigger.send(());
    }
}

impl fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWatcher").finish_non_exhaustive()
    }
}

/// Whether an event says a file changed. Our own reads of the files (open,
/// read, close) are events too on Linux, and reacting to them would reload
/// forever.
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{MetadataKind, ModifyKind};
    match kind {
        EventKind::Access(_) | EventKind::Other => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Any | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_burst_is_one_call_and_other_files_none() {
        let dir = std::env::temp_dir().join(format!("portcullis-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("watched.pem");
        std::fs::write(&file, "a").unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let watcher = FileWatcher::watch([file.clone()], Duration::from_millis(100), move || {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        std::fs::write(dir.join("other.log"), "x").unwrap();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(calls.load(Ordering::SeqCst), 0, "called for another file");
        for text in ["b", "c", "d"] {
            std::fs::write(&file, text).unwrap();
        }
        let mut waited = 0;
        while calls.load(Ordering::SeqCst) == 0 && waited < 100 {
            std::thread::sleep(Duration::from_millis(20));
            waited += 1;
        }
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one call per burst");
        watcher.trigger();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        drop(watcher);
        std::fs::write(&file, "e").unwrap();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "called after the guard was dropped"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
