//! `/metrics`' body, rendered at most once per [`MAX_AGE`] and shared.
//!
//! A render of a large registry takes milliseconds (100 probes: 17,200
//! series, 1.4 MB, about 3 ms) and a body held by a slow client is memory
//! until it has read it. So scrapes that arrive while a render runs wait
//! for it and get its body, a scrape within [`MAX_AGE`] of a render gets
//! that body too, and every response is the same shared buffer: two
//! Prometheus replicas scraping at the same moment cost one render, and a
//! thousand slow clients hold one body between them, not a thousand
//! copies. A body is at most [`MAX_AGE`] older than its scrape, far less
//! than any scrape interval.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a rendered body is served again.
pub const MAX_AGE: Duration = Duration::from_secs(1);

type Render = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

pub struct Exposition {
    render: Render,
    max_age: Duration,
    /// The last body and when its render began (the age of its numbers).
    /// An async lock: a scrape waits here while another renders.
    latest: Mutex<Option<(Instant, Bytes)>>,
}

impl Exposition {
    pub fn new(render: impl Fn() -> Vec<u8> + Send + Sync + 'static, max_age: Duration) -> Self {
        Exposition {
            render: Arc::new(render),
            max_age,
            latest: Mutex::new(None),
        }
    }

    /// The current body: the last one if it is younger than `max_age`,
    /// else a new render (one at a time; whoever waited gets it).
    pub async fn body(&self) -> Bytes {
        let mut latest = self.latest.lock().await;
        if let Some((at, body)) = latest.as_ref() {
            if at.elapsed() < self.max_age {
                return body.clone();
            }
        }
        let began = Instant::now();
        let body = Bytes::from((self.render)());
        *latest = Some((began, body.clone()));
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An exposition whose body is the number of renders so far.
    fn counting() -> (Arc<Exposition>, Arc<AtomicUsize>) {
        let renders = Arc::new(AtomicUsize::new(0));
        let r = renders.clone();
        let e = Exposition::new(
            move || {
                let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                // Long enough that the other scrapes arrive meanwhile.
                std::thread::sleep(Duration::from_millis(20));
                format!("render {n}\n").into_bytes()
            },
            MAX_AGE,
        );
        (Arc::new(e), renders)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn ten_concurrent_scrapes_cost_one_render_and_share_its_body() {
        let (e, renders) = counting();
        let scrapes: Vec<_> = (0..10)
            .map(|_| {
                let e = e.clone();
                tokio::spawn(async move { e.body().await })
            })
            .collect();
        let mut bodies = Vec::new();
        for s in scrapes {
            bodies.push(s.await.expect("scrape"));
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        for b in &bodies {
            assert_eq!(&b[..], b"render 1\n");
            // One buffer, not ten copies.
            assert_eq!(b.as_ptr(), bodies[0].as_ptr());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_is_served_again_only_within_its_max_age() {
        let (e, renders) = counting();
        assert_eq!(&e.body().await[..], b"render 1\n");
        tokio::time::advance(MAX_AGE - Duration::from_millis(1)).await;
        assert_eq!(&e.body().await[..], b"render 1\n");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(&e.body().await[..], b"render 2\n");
        assert_eq!(renders.load(Ordering::SeqCst), 2);
    }
}
