//! Progress bars on a terminal (stderr), for the packager's `Reporter`; silent otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
}

impl Progress {
    /// Bars only when stderr is a terminal and the output is not for a script.
    pub fn new(json: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            enabled: !json && std::io::stderr().is_terminal(),
        }
    }

    fn replace(&self, bar: Option<ProgressBar>) {
        let mut slot = self.bar.lock().expect("progress lock");
        if let Some(old) = slot.take() {
            old.finish_and_clear();
        }
        *slot = bar;
    }

    pub fn clear(&self) {
        self.replace(None);
    }
}

impl flowpack_packager::Reporter for Progress {
    fn phase(&self, what: &str) {
        if self.enabled {
            let bar = ProgressBar::new_spinner().with_message(what.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            self.replace(Some(bar));
        }
    }

    fn upload_started(&self, what: &str, bytes: u64) {
        if self.enabled {
            let bar = ProgressBar::new(bytes).with_message(format!("uploading {what}"));
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            self.replace(Some(bar));
        }
    }

    fn uploaded(&self, bytes: u64) {
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.inc(bytes);
        }
    }

    fn upload_finished(&self) {
        self.clear();
    }

    fn warn(&self, message: &str) {
        self.clear();
        tracing::warn!("{message}");
    }
}
