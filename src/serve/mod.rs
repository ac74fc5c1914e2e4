//! The HTTP endpoints: `/metrics`, `/healthz`, `/readyz`,
//! `/api/v1/status`, the status page `/` and the runbooks `/runbooks`.
//!
//! Thin: handlers read shared state, they never block on Kafka.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;
use crate::status::Sources;

pub mod exposition;
mod listen;
mod runbooks;

use exposition::Exposition;

pub use listen::{raise_open_files_limit, serve, Limits};

#[derive(Clone)]
struct AppState {
    exposition: Arc<Exposition>,
    status: Arc<Sources>,
}

pub fn router(metrics: Metrics, status: Sources) -> Router {
    let exposition = Exposition::new(move || metrics.render(), exposition::MAX_AGE);
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status_handler))
        .route("/", get(status_page))
        .route(crate::config::RUNBOOKS_PATH, get(runbooks_page))
        .with_state(AppState {
            exposition: Arc::new(exposition),
            status: Arc::new(status),
        })
}

/// The status page for people: one self-contained HTML file that
/// polls `/api/v1/status`; no external asset.
const STATUS_PAGE: &str = include_str!("status.html");

async fn status_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        STATUS_PAGE,
    )
}

async fn runbooks_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        runbooks::html(),
    )
}

/// 200 while the process works; 503 naming the thread once one of the
/// consumer or delivery-report threads has died (a probe would be silently
/// stopped: better restarted).
async fn healthz() -> impl IntoResponse {
    health(&crate::util::threads::dead())
}

fn health(dead: &[String]) -> (StatusCode, String) {
    if dead.is_empty() {
        (StatusCode::OK, "ok\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("threads died by a panic: {}\n", dead.join(", ")),
        )
    }
}

async fn status_handler(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(s.status.report())
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        s.exposition.body().await,
    )
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let waiting = s.status.readiness.waiting_for();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for: {}\n", waiting.join(", ")),
        )
    }
}
