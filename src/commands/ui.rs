//! `ui`: serves the read-only web UI of a store (the `flowpack-ui` crate) until Ctrl-C.

use anyhow::{Context, Result};

use crate::cli::UiArgs;
use crate::settings;

pub async fn run(a: UiArgs) -> Result<()> {
    let store = settings::store(a.store.store.as_deref(), settings::Access::Read)?;
    let listener = tokio::net::TcpListener::bind((a.bind, a.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} (another program may use the port: try --port 0)",
                a.bind, a.port
            )
        })?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    if !a.bind.is_loopback() {
        tracing::warn!(
            "the UI listens on {addr}: it has no login, so anyone who reaches it reads \
             every run, log and artifact of the store"
        );
    }
    let url = format!("http://{addr}/");
    if a.json {
        outln!("{}", serde_json::json!({"url": url, "store": store.url()}));
    } else {
        outln!(
            "flowpack ui: {url} (store {}); Ctrl-C stops it",
            store.url()
        );
    }
    if a.open {
        open_browser(&url);
    }
    let limits = flowpack_ui::Limits {
        cache_bytes: a.cache_mib << 20,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    flowpack_ui::serve(store, listener, limits, shutdown).await?;
    Ok(())
}

/// Starts the desktop's browser on `url`; a failure is a warning (the URL is printed).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        tracing::warn!("cannot start a browser ({opener}: {e}): open {url} yourself");
    }
}
