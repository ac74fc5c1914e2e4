//! The HTTP endpoints: `/metrics`, `/healthz`, `/readyz`,
//! `/api/v1/status` and the status page `/`.
//!
//! Thin: handlers read shared state, they never block on Kafka.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::{Metrics, OutputMetrics};
use crate::probe::{Journal, Readiness};
use crate::slo::evaluator::SloStatus;

mod listen;

pub use listen::{raise_open_files_limit, serve, Limits};

/// A probe and its outputs' metric handles, for the status API.
pub struct ProbeHandles {
    pub name: String,
    pub kind: String,
    pub outputs: Vec<(String, OutputMetrics)>,
}

/// What `/api/v1/status` reports besides readiness.
pub struct StatusSources {
    pub run: String,
    pub probes: Vec<ProbeHandles>,
    pub slos: Arc<RwLock<Vec<SloStatus>>>,
    pub journal: Arc<Journal>,
    /// Consumer groups watched (`lag` probes, pipelines' `lag:`).
    pub lag: crate::lag::Board,
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    readiness: Arc<Readiness>,
    status: Arc<StatusSources>,
}

pub fn router(metrics: Metrics, readiness: Arc<Readiness>, status: StatusSources) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status_handler))
        .route("/", get(status_page))
        .with_state(AppState {
            metrics,
            readiness,
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

async fn status_handler(State(s): State<AppState>) -> impl IntoResponse {
    let waiting = s.readiness.waiting_for();
    let probes: Vec<serde_json::Value> = s
        .status
        .probes
        .iter()
        .map(|p| {
            let outputs: Vec<serde_json::Value> = p
                .outputs
                .iter()
                .map(|(output, m)| {
                    let q = |w: usize, q: usize| {
                        m.quantiles
                            .get(w)
                            .and_then(|g| g.get(q))
                            .map(|g| g.get())
                            .filter(|v| v.is_finite())
                    };
                    serde_json::json!({
                        "name": output,
                        "delivered": m.delivered.get(),
                        "lost": m.lost.get(),
                        "late": m.late.get(),
                        "duplicate": m.duplicate.get(),
                        "out_of_order": m.out_of_order.get(),
                        "foreign": m.foreign.get(),
                        "latency_seconds_1m": {"p50": q(0, 0), "p90": q(0, 1), "p99": q(0, 2), "p999": q(0, 3)},
                        "latency_seconds_5m": {"p50": q(1, 0), "p90": q(1, 1), "p99": q(1, 2), "p999": q(1, 3)},
                        // [unix seconds, p50, p99] over the last minute, every 5 s, for an hour.
                        "latency_history": s.status.journal.latency(&p.name, output),
                    })
                })
                .collect();
            serde_json::json!({"name": p.name, "type": p.kind, "outputs": outputs})
        })
        .collect();
    let slos = s
        .status
        .slos
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let groups: Vec<crate::lag::GroupView> = s
        .status
        .lag
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .flatten()
        .cloned()
        .collect();
    axum::Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "run": s.status.run,
        "ready": waiting.is_empty(),
        "waiting_for": waiting,
        "probes": probes,
        "slos": slos,
        "recent_losses": s.status.journal.losses(),
        "consumer_groups": groups,
    }))
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let waiting = s.readiness.waiting_for();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for: {}\n", waiting.join(", ")),
        )
    }
}
