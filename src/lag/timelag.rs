//! Lag in seconds, estimated the way kafka-lag-exporter does: each read of
//! a partition's high watermark is a point (offset, time the offset was
//! first seen as the watermark), so the table says, to within one read
//! interval, when the log ended at each recent offset. A committed offset
//! is looked up in it: the group's lag in time is how long ago the log
//! ended where the group stands, i.e. how long ago it would have been
//! caught up (about how long ago the first record it has not consumed was
//! written). Pure, with time passed in.
//!
//! - Inside the table: linear interpolation between the two points around
//!   the committed offset.
//! - Older than the table's first point: extrapolated back at the table's
//!   mean write rate; with no rate known yet (one point, or a partition
//!   nobody writes to), at least as old as the first point (a lower bound
//!   that grows with time, never an overstatement).
//! - Caught up (committed at or past the watermark): 0.

use std::collections::VecDeque;

/// Points kept per partition: at the default 10 s interval, about 10
/// minutes of writes; older lags are extrapolated.
pub const POINTS: usize = 64;

/// The (offset, first seen) points of one partition's high watermark,
/// offsets strictly increasing.
#[derive(Debug, Clone, Default)]
pub struct Table {
    points: VecDeque<(i64, f64)>,
}

impl Table {
    /// Adds a read of the high watermark at `at` (Unix seconds). A
    /// watermark that did not move keeps its first time; one that went
    /// back (the topic was deleted and created again) starts the table
    /// over.
    pub fn record(&mut self, high_watermark: i64, at: f64) {
        match self.points.back() {
            Some(&(o, _)) if high_watermark == o => return,
            Some(&(o, _)) if high_watermark < o => self.points.clear(),
            _ => {}
        }
        if self.points.len() == POINTS {
            self.points.pop_front();
        }
        self.points.push_back((high_watermark, at));
    }

    /// Seconds since the watermark was at `committed` (the log ended where
    /// the group stands), at `now`; `None` with no point yet.
    pub fn lag_seconds(&self, committed: i64, now: f64) -> Option<f64> {
        let &(last_offset, _) = self.points.back()?;
        if committed >= last_offset {
            return Some(0.0);
        }
        let written = self.written_at(committed);
        Some((now - written).max(0.0))
    }

    /// When the watermark was at `offset` (below the newest point).
    fn written_at(&self, offset: i64) -> f64 {
        let p = &self.points;
        // The first point past the offset.
        let i = p.partition_point(|&(o, _)| o <= offset);
        if i == 0 {
            let (o0, t0) = p[0];
            let (o1, t1) = p[p.len() - 1];
            if o1 > o0 && t1 > t0 {
                let rate = (o1 - o0) as f64 / (t1 - t0);
                return t0 - (o0 - offset) as f64 / rate;
            }
            return t0;
        }
        // The watermark went from o_a to o_b between t_a and t_b.
        let (oa, ta) = p[i - 1];
        let (ob, tb) = p[i];
        let share = (offset - oa) as f64 / (ob - oa) as f64;
        ta + (tb - ta) * share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(points: &[(i64, f64)]) -> Table {
        let mut t = Table::default();
        for (o, at) in points {
            t.record(*o, *at);
        }
        t
    }

    #[test]
    fn caught_up_is_zero_and_nothing_is_unknown() {
        assert_eq!(Table::default().lag_seconds(5, 100.0), None);
        let t = table(&[(100, 10.0), (200, 20.0)]);
        assert_eq!(t.lag_seconds(200, 30.0), Some(0.0));
        assert_eq!(t.lag_seconds(250, 30.0), Some(0.0));
    }

    #[test]
    fn interpolates_between_the_points_around_the_offset() {
        // 10 records per second from t=10 to t=20.
        let t = table(&[(100, 10.0), (200, 20.0)]);
        // The watermark was 150 at t=15.
        let lag = t.lag_seconds(150, 30.0).unwrap();
        assert!((lag - 15.0).abs() < 1e-9, "{lag}");
        // And 100 at t=10.
        let lag = t.lag_seconds(100, 30.0).unwrap();
        assert!((lag - 20.0).abs() < 1e-9, "{lag}");
        // A group one record behind the newest point stood at the log's
        // end within the last interval: a lag, not 0.
        let lag = t.lag_seconds(199, 20.0).unwrap();
        assert!(lag > 0.0, "{lag}");
        // The lag grows with time while the group stands still.
        assert!(t.lag_seconds(150, 40.0).unwrap() > t.lag_seconds(150, 30.0).unwrap());
    }

    #[test]
    fn a_watermark_that_does_not_move_keeps_its_first_time() {
        let t = table(&[(100, 10.0), (200, 20.0), (200, 50.0), (200, 90.0)]);
        let lag = t.lag_seconds(150, 100.0).unwrap();
        assert!((lag - 85.0).abs() < 1e-9, "{lag}");
    }

    #[test]
    fn older_than_the_table_is_extrapolated_at_its_rate() {
        // 10 per second; offset 50 is 50 records before the first point.
        let t = table(&[(100, 10.0), (200, 20.0)]);
        let lag = t.lag_seconds(50, 20.0).unwrap();
        assert!((lag - 15.0).abs() < 1e-9, "{lag}");
        // One point, no rate: at least as old as that point.
        let t = table(&[(100, 10.0)]);
        assert_eq!(t.lag_seconds(10, 25.0), Some(15.0));
    }

    #[test]
    fn the_table_is_bounded_and_restarts_when_offsets_go_back() {
        let mut t = Table::default();
        for i in 0..1000 {
            t.record(i * 10, i as f64);
        }
        assert_eq!(t.points.len(), POINTS);
        t.record(5, 2000.0);
        assert_eq!(t.points.len(), 1);
        assert_eq!(t.lag_seconds(0, 2010.0), Some(10.0));
    }
}
