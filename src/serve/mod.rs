//! The HTTP endpoints: `/metrics`, `/healthz`, `/readyz`,
//! `/api/v1/status`, the status page `/`, the runbooks `/runbooks` and the
//! SLA report of the SLOs' current period `/report`.
//!
//! Thin: handlers read shared state, they never block on Kafka.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;
use crate::slo::evaluator::HistoryBoard;
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
    history: HistoryBoard,
}

pub fn router(metrics: Metrics, status: Sources, history: HistoryBoard) -> Router {
    let exposition = Exposition::new(move || metrics.render(), exposition::MAX_AGE);
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status_handler))
        .route("/", get(status_page))
        .route(crate::config::RUNBOOKS_PATH, get(runbooks_page))
        .route(REPORT_PATH, get(report_handler))
        .with_state(AppState {
            exposition: Arc::new(exposition),
            status: Arc::new(status),
            history,
        })
}

/// Where a running slaprobe serves its SLA report.
pub const REPORT_PATH: &str = "/report";

#[derive(serde::Deserialize)]
struct ReportQuery {
    period: Option<String>,
    format: Option<String>,
}

/// The SLA report from this slaprobe's own SLO windows, over `period`
/// (default: the longest SLO period) in `format` (default html).
async fn report_handler(
    State(s): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> axum::response::Response {
    use crate::report::{build, saved, Format, Period, MAX_PERIOD};
    let bad = |msg: String| (StatusCode::BAD_REQUEST, msg).into_response();
    let format = match q.format.as_deref().map(Format::parse) {
        None => Format::Html,
        Some(Some(f)) => f,
        Some(None) => return bad("format must be html, markdown or json\n".into()),
    };
    let history = s.history.read().unwrap_or_else(|e| e.into_inner()).clone();
    let length = match q.period.as_deref().map(humantime::parse_duration) {
        None => history
            .iter()
            .map(|h| h.slo.period)
            .max()
            .unwrap_or(std::time::Duration::from_secs(30 * 86_400)),
        Some(Ok(d)) if d >= std::time::Duration::from_secs(60) && d <= MAX_PERIOD => d,
        Some(_) => return bad("period must be a duration from 1m to 366d, e.g. 30d\n".into()),
    };
    let now = crate::util::format::unix_now();
    let period = Period::new(length, now);
    let report = build(
        &period,
        saved::from_live(&history, &period),
        "this slaprobe's SLO windows (since its state_dir began, or its start; incidents: the tiers firing now; `slaprobe report --prometheus` reads Prometheus' history)",
        now,
    );
    let (content_type, body) = format.write(&report);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
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
