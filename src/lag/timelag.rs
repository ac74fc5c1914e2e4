//! Lag in seconds: how long ago the first record a group has not consumed
//! was written. Pure, with time passed in.
//!
//! The reader fetches the record at the committed offset and takes its
//! timestamp ([`Method::Record`]): exact (to the producer's clock, or the
//! broker's with `LogAppendTime`). Where that record could not be read, it
//! falls back to a table of the partition's high watermarks, the way
//! kafka-lag-exporter estimates: each read of the watermark is a point
//! (offset, time the offset was first seen as the watermark), so the
//! table says, to within one read interval, when the log ended at each
//! recent offset, and the group's lag is how long ago the log ended where
//! it stands.
//!
//! - Inside the table: linear interpolation between the two points around
//!   the committed offset ([`Method::Interpolated`]).
//! - Older than the table's first point: never extrapolated (a rate taken
//!   from the table reads absurd values during bursts); the first point's
//!   age, a lower bound that grows with time ([`Method::AtLeast`]).
//! - Caught up (committed at or past the watermark): 0, also on a quiet
//!   topic ([`Method::CaughtUp`]).

use std::collections::VecDeque;

/// Points kept per partition: at the default 10 s interval, about 10
/// minutes of writes; older lags are read from the record or bounded below.
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
    /// the group stands), at `now`, and how they were found; `None` with
    /// no point yet.
    pub fn lag_seconds(&self, committed: i64, now: f64) -> Option<(f64, Method)> {
        let p = &self.points;
        let &(last_offset, _) = p.back()?;
        if committed >= last_offset {
            return Some((0.0, Method::CaughtUp));
        }
        // The first point past the offset.
        let i = p.partition_point(|&(o, _)| o <= committed);
        if i == 0 {
            return Some(((now - p[0].1).max(0.0), Method::AtLeast));
        }
        // The watermark went from o_a to o_b between t_a and t_b.
        let (oa, ta) = p[i - 1];
        let (ob, tb) = p[i];
        let share = (committed - oa) as f64 / (ob - oa) as f64;
        let written = ta + (tb - ta) * share;
        Some(((now - written).max(0.0), Method::Interpolated))
    }

    /// The points, oldest first: (offset, time first seen).
    pub fn points(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.points.iter().copied()
    }

    /// A table of saved `points` (as [`Table::points`] gave them).
    pub fn from_points(points: impl IntoIterator<Item = (i64, f64)>) -> Table {
        let mut t = Table::default();
        for (o, at) in points {
            t.record(o, at);
        }
        t
    }
}

/// How a lag in seconds was found: the `method` label of
/// `slaprobe_consumergroup_lag_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Committed at or past the log's end: 0.
    CaughtUp,
    /// Now minus the timestamp of the record at the committed offset.
    Record,
    /// Between two reads of the watermark around the committed offset.
    Interpolated,
    /// Older than the watermark table, the record not read: the age of
    /// the table's first point, a lower bound.
    AtLeast,
}

impl Method {
    pub const ALL: [Method; 4] = [
        Method::CaughtUp,
        Method::Record,
        Method::Interpolated,
        Method::AtLeast,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Method::CaughtUp => "caught_up",
            Method::Record => "record",
            Method::Interpolated => "interpolated",
            Method::AtLeast => "at_least",
        }
    }
}

/// The lag in seconds of a group committed at `committed` on a partition
/// whose high watermark is `high_watermark`, at `now` (the clock of
/// `table`) and `wall_now` (Unix seconds): from the record at the
/// committed offset when its timestamp (Unix seconds) was read, else from
/// the table.
pub fn lag_seconds(
    committed: i64,
    high_watermark: i64,
    record_time: Option<f64>,
    table: Option<&Table>,
    now: f64,
    wall_now: f64,
) -> Option<(f64, Method)> {
    if committed >= high_watermark {
        return Some((0.0, Method::CaughtUp));
    }
    if let Some(t) = record_time {
        // A producer's clock ahead of ours is no negative lag.
        return Some(((wall_now - t).max(0.0), Method::Record));
    }
    table?.lag_seconds(committed, now)
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
        assert_eq!(t.lag_seconds(200, 30.0), Some((0.0, Method::CaughtUp)));
        assert_eq!(t.lag_seconds(250, 30.0), Some((0.0, Method::CaughtUp)));
        // A quiet topic the group has read to its end: 0 from the first
        // read, whatever the table holds.
        assert_eq!(
            lag_seconds(7, 7, None, None, 5.0, 1e9),
            Some((0.0, Method::CaughtUp))
        );
    }

    #[test]
    fn interpolates_between_the_points_around_the_offset() {
        // 10 records per second from t=10 to t=20.
        let t = table(&[(100, 10.0), (200, 20.0)]);
        // The watermark was 150 at t=15.
        let (lag, method) = t.lag_seconds(150, 30.0).unwrap();
        assert!((lag - 15.0).abs() < 1e-9, "{lag}");
        assert_eq!(method, Method::Interpolated);
        // And 100 at t=10.
        let (lag, _) = t.lag_seconds(100, 30.0).unwrap();
        assert!((lag - 20.0).abs() < 1e-9, "{lag}");
        // A group one record behind the newest point stood at the log's
        // end within the last interval: a lag, not 0.
        let (lag, _) = t.lag_seconds(199, 20.0).unwrap();
        assert!(lag > 0.0, "{lag}");
        // The lag grows with time while the group stands still.
        assert!(t.lag_seconds(150, 40.0).unwrap().0 > t.lag_seconds(150, 30.0).unwrap().0);
    }

    #[test]
    fn a_watermark_that_does_not_move_keeps_its_first_time() {
        let t = table(&[(100, 10.0), (200, 20.0), (200, 50.0), (200, 90.0)]);
        let (lag, _) = t.lag_seconds(150, 100.0).unwrap();
        assert!((lag - 85.0).abs() < 1e-9, "{lag}");
    }

    #[test]
    fn older_than_the_table_is_a_lower_bound_never_extrapolated() {
        // 10 per second; offset 50 is 50 records before the first point: a
        // rate would say 15 s, but the writes before the table are unknown
        // (a burst, or hours of nothing): at least the first point's age.
        let t = table(&[(100, 10.0), (200, 20.0)]);
        assert_eq!(t.lag_seconds(50, 20.0), Some((10.0, Method::AtLeast)));
        let t = table(&[(100, 10.0)]);
        assert_eq!(t.lag_seconds(10, 25.0), Some((15.0, Method::AtLeast)));
    }

    #[test]
    fn the_record_at_the_committed_offset_wins_over_the_table() {
        let t = table(&[(100, 10.0), (200, 20.0)]);
        // Written an hour before the table began.
        assert_eq!(
            lag_seconds(50, 200, Some(1_000.0), Some(&t), 20.0, 4_600.0),
            Some((3_600.0, Method::Record))
        );
        // A producer clock ahead of ours.
        assert_eq!(
            lag_seconds(150, 200, Some(5_000.0), Some(&t), 20.0, 4_600.0),
            Some((0.0, Method::Record))
        );
        // Not read: the table.
        assert_eq!(
            lag_seconds(150, 200, None, Some(&t), 30.0, 4_600.0),
            Some((15.0, Method::Interpolated))
        );
        assert_eq!(lag_seconds(150, 200, None, None, 30.0, 4_600.0), None);
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
        assert_eq!(t.lag_seconds(0, 2010.0), Some((10.0, Method::AtLeast)));
    }
}
