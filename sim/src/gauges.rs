//! The services' gauges, watched while the run goes on (part of check 15, operator figures):
//! the in-flight sagas and their oldest age (order), and each outbox's depth and oldest age
//! (order, billing), against the databases they are read from.
//!
//! A gauge is set now and then by its service (the order service's recovery loop every
//! `recovery_interval_ms`; a relay at the start of each delivery batch), so at a reading it
//! shows the database as it was at some recent moment. The watch asserts only what holds
//! whatever that moment was, given a bound on how long ago it can be (the host must have
//! been up all that time):
//!
//! - **something stuck is shown**: an order unfinished at every reading for longer than the
//!   bound (status only moves forward, so it was unfinished all along) makes the in-flight
//!   gauge at least 1 and the age at least its age then; an outbox row at the head of its
//!   outbox that long (sequence numbers only grow, so nothing older came) makes the depth at
//!   least 1 and the age at least the row's;
//! - **no age exceeds its oldest possible subject**: the age is at most now less the oldest
//!   creation time the thing it measures could have;
//! - **quiet shows nothing**: no unfinished order, no new order, for longer than the bound
//!   makes the in-flight gauge 0 and the age 0; no outbox row and no new one (the sequence
//!   did not move) makes the depth 0 and the age 0.
//!
//! Times a service writes are on its own clock, which a skew may move by up to the plan's
//! bound for it ([`crate::model::skew_bound_ms`]); every comparison allows that.

use crate::checks::{violation, Violation, FIGURES};
use crate::cluster::Cluster;
use crate::snapshot::OUTBOX_SERVICES;
use contracts::Timestamp;
use contracts::{OrderId, ServiceName};
use platform::storage::Cached;
use std::collections::{BTreeMap, BTreeSet};

/// How long ago the order service's gauges may have been set, at most, while it is up: its
/// recovery interval (`order::CONFIG.recovery_interval_ms`, 2 s) and a reading's period.
pub const SAGA_GAUGE_BOUND_MS: u64 = order::CONFIG.recovery_interval_ms + 500;

/// The same for an outbox's gauges, measured from the moment a row was first seen at the
/// head: the delivery of that row that may be under way (one attempt,
/// `RELAY_CONFIG.call_timeout_ms`, twice over when the simulation's duplicate fault sends a
/// copy first and waits for it), the relay's poll interval, and a reading's period.
pub const OUTBOX_GAUGE_BOUND_MS: u64 =
    2 * platform::outbox::RELAY_CONFIG.call_timeout_ms + platform::outbox::RELAY_CONFIG.poll_interval_ms + 500;

/// Slack for an age read back from a float gauge, in ms.
const ROUNDING_MS: f64 = 1.0;

/// What one reading sees of one thing a gauge measures and of the gauge.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// The things now: (key, creation time in ms since the run's start on the service's clock),
    /// oldest key first.
    pub items: Vec<(Key, i64)>,
    /// A number that moves whenever a thing is created (orders: how many there are; an
    /// outbox: its last sequence number).
    pub created_mark: i64,
    /// The gauges: how many, and the oldest's age in seconds.
    pub count: i64,
    pub age_s: f64,
}

/// An unfinished order or an outbox row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Order(OrderId),
    Row(i64),
}

/// The watch over one pair of gauges.
#[derive(Debug, Default)]
struct Watch {
    /// When each thing present at the last reading was first seen (orders: present; outbox
    /// rows: at the head).
    since: BTreeMap<Key, u64>,
    /// Since when every reading showed nothing and the same creation mark.
    quiet_since: Option<u64>,
    last_mark: Option<i64>,
    /// The oldest creation time seen of a thing this gauge may have measured.
    oldest_created_ms: Option<i64>,
    /// The kinds of violation already reported (each once per run).
    reported: BTreeSet<&'static str>,
}

/// What the watch needs to know of a host at a reading.
#[derive(Clone, Copy, Debug)]
pub struct HostState {
    /// Since when the host has run without a crash (None: down now).
    pub up_since_ms: Option<u64>,
    /// The largest skew of its clock the plan gives it, in ms.
    pub skew_bound_ms: i64,
}

/// The watches of one run.
#[derive(Debug, Default)]
pub struct Gauges {
    sagas: Watch,
    outboxes: BTreeMap<&'static str, Watch>,
}

impl Gauges {
    /// Reads the gauges and the databases of `cluster` at `now_ms` and checks them. A
    /// reading that fails (metrics off, a time that does not parse) is itself a violation.
    pub fn check(&mut self, cluster: &Cluster, now_ms: u64, host: impl Fn(ServiceName) -> HostState) -> Vec<Violation> {
        let mut found = Vec::new();
        match read_sagas(cluster) {
            Ok(reading) => found.extend(self.observe_sagas(now_ms, &reading, host(ServiceName::Order))),
            Err(error) => found.push(violation(FIGURES, ServiceName::Order.as_str(), error)),
        }
        for service in OUTBOX_SERVICES {
            match read_outbox(cluster, service) {
                Ok(reading) => found.extend(self.observe_outbox(service, now_ms, &reading, host(service))),
                Err(error) => found.push(violation(FIGURES, service.as_str(), error)),
            }
        }
        found
    }

    pub fn observe_sagas(&mut self, now_ms: u64, reading: &Reading, host: HostState) -> Vec<Violation> {
        let subject = ServiceName::Order.as_str();
        let names = ("order_sagas_in_flight", "order_oldest_saga_age_seconds", "unfinished order");
        self.sagas.observe(now_ms, reading, host, SAGA_GAUGE_BOUND_MS, false, subject, names)
    }

    pub fn observe_outbox(
        &mut self,
        service: ServiceName,
        now_ms: u64,
        reading: &Reading,
        host: HostState,
    ) -> Vec<Violation> {
        let names = ("outbox_depth", "outbox_oldest_age_seconds", "outbox row at the head");
        let watch = self.outboxes.entry(service.as_str()).or_default();
        watch.observe(now_ms, reading, host, OUTBOX_GAUGE_BOUND_MS, true, service.as_str(), names)
    }
}

impl Watch {
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &mut self,
        now_ms: u64,
        reading: &Reading,
        host: HostState,
        bound_ms: u64,
        head_only: bool,
        subject: &str,
        (count_name, age_name, thing): (&str, &str, &str),
    ) -> Vec<Violation> {
        // Track what is present (or at the head) and since when.
        let tracked: Vec<(Key, i64)> =
            if head_only { reading.items.iter().take(1).copied().collect() } else { reading.items.clone() };
        self.since.retain(|key, _| tracked.iter().any(|(k, _)| k == key));
        for (key, _) in &tracked {
            self.since.entry(*key).or_insert(now_ms);
        }
        let oldest_now = reading.items.iter().map(|(_, created)| *created).min();
        self.oldest_created_ms = match (self.oldest_created_ms, oldest_now) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let quiet = reading.items.is_empty() && self.last_mark.is_none_or(|mark| mark == reading.created_mark);
        self.quiet_since = if quiet { self.quiet_since.or(Some(now_ms)) } else { None };
        self.last_mark = Some(reading.created_mark);

        // Only a host up for longer than the bound has surely set its gauges since.
        let Some(up_since) = host.up_since_ms else { return Vec::new() };
        let Some(settled_at) = now_ms.checked_sub(bound_ms) else { return Vec::new() };
        if up_since > settled_at {
            return Vec::new();
        }
        let skew = host.skew_bound_ms as f64;
        let age_ms = reading.age_s * 1000.0;
        let mut found = Vec::new();
        let reported = &mut self.reported;
        let mut fail = |kind: &'static str, evidence: String| {
            if reported.insert(kind) {
                found.push(violation(FIGURES, subject, evidence));
            }
        };

        // Something stuck is shown.
        let stuck = tracked.iter().filter(|(key, _)| self.since[key] <= settled_at).min_by_key(|(_, created)| *created);
        if let Some((key, created_ms)) = stuck {
            let seen_ms = self.since[key];
            if reading.count < 1 {
                fail(
                    "stuck not counted",
                    format!(
                        "{count_name} is {} at {now_ms} ms, but the {thing} {key:?} has been there since {seen_ms} ms",
                        reading.count
                    ),
                );
            }
            // The gauge was set at `settled_at` or later, when the thing was there.
            let at_least = settled_at as f64 - skew - *created_ms as f64;
            if age_ms + ROUNDING_MS < at_least {
                fail(
                    "age too low",
                    format!(
                    "{age_name} is {:.3} s at {now_ms} ms, but the {thing} {key:?} (created at {created_ms} ms) was at \
                     least {:.3} s old when it was last set (clock skew up to {skew} ms allowed)",
                    reading.age_s,
                    at_least / 1000.0
                ),
                );
            }
        }

        // No age exceeds its oldest possible subject: one seen at a reading, or one created
        // since the reading before the gauge was set (younger than a reading's period).
        let youngest_unseen_ms = crate::run::CHECK_EVERY_MS as f64 + 2.0 * skew;
        let at_most = self
            .oldest_created_ms
            .map_or(youngest_unseen_ms, |oldest| (now_ms as f64 + skew - oldest as f64).max(youngest_unseen_ms));
        if age_ms > at_most + ROUNDING_MS || age_ms < 0.0 {
            fail(
                "age out of range",
                format!(
                "{age_name} is {:.3} s at {now_ms} ms, but nothing it measures can be older than {:.3} s or younger \
                 than 0 (clock skew up to {skew} ms allowed)",
                reading.age_s,
                at_most / 1000.0
            ),
            );
        }

        // Quiet shows nothing.
        if self.quiet_since.is_some_and(|since| since + crate::run::CHECK_EVERY_MS <= settled_at)
            && (reading.count != 0 || reading.age_s != 0.0)
        {
            fail(
                "quiet not zero",
                format!(
                    "{count_name} is {} and {age_name} {:.3} s at {now_ms} ms, but no {thing} has been there and none \
                 was created since {} ms",
                    reading.count,
                    reading.age_s,
                    self.quiet_since.unwrap_or_default()
                ),
            );
        }
        found
    }
}

/// `text`, a time a service wrote, in ms since the run's start (`Scenario::start`).
fn millis_since_start(text: &str, start: Timestamp) -> Result<i64, String> {
    let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| format!("'{text}' is not a time"))?;
    Ok((at.to_utc() - start).num_milliseconds())
}

const METRICS_ON: &str = "the simulation's metrics are always on";

/// The unfinished orders, the number of orders, and the order service's gauges.
fn read_sagas(cluster: &Cluster) -> Result<Reading, String> {
    let metrics = cluster.metrics[&ServiceName::Order].orders().expect(METRICS_ON);
    let (items, created_mark) = cluster.dbs[&ServiceName::Order]
        .read(|c| {
            let mut statement =
                c.prepare_cached("SELECT id, created_at FROM orders WHERE status NOT IN (?1, ?2) ORDER BY created_at")?;
            let rows = statement
                .query_map(order::store::FINAL, |row| Ok((row.get::<_, OrderId>(0)?, row.get::<_, String>(1)?)))?;
            let rows: Vec<(OrderId, String)> = rows.collect::<rusqlite::Result<_>>()?;
            let total: i64 = c.query_row_cached("SELECT COUNT(*) FROM orders", [], |row| row.get(0))?;
            Ok::<_, rusqlite::Error>((rows, total))
        })
        .map_err(|error| format!("the orders cannot be read: {error}"))?;
    let items = items
        .iter()
        .map(|(id, created)| Ok((Key::Order(*id), millis_since_start(created, cluster.start)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Reading {
        items,
        created_mark,
        count: metrics.sagas_in_flight.get(),
        age_s: metrics.oldest_saga_age_seconds.get(),
    })
}

/// An outbox's rows (oldest first), its last sequence number, and its gauges.
fn read_outbox(cluster: &Cluster, service: ServiceName) -> Result<Reading, String> {
    let metrics = cluster.metrics[&service].outbox().expect(METRICS_ON);
    let (items, created_mark) = cluster.dbs[&service]
        .read(|c| {
            let mut statement = c.prepare_cached("SELECT seq, created_at FROM outbox ORDER BY seq")?;
            let rows = statement.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))?;
            let rows: Vec<(i64, String)> = rows.collect::<rusqlite::Result<_>>()?;
            let last: Option<i64> = c
                .query_row_cached("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'", [], |row| row.get(0))
                .or_else(|error| if error == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(error) })?;
            Ok::<_, rusqlite::Error>((rows, last.unwrap_or(0)))
        })
        .map_err(|error| format!("the outbox cannot be read: {error}"))?;
    let items = items
        .iter()
        .map(|(seq, created)| Ok((Key::Row(*seq), millis_since_start(created, cluster.start)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Reading { items, created_mark, count: metrics.depth.get(), age_s: metrics.oldest_age_seconds.get() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: HostState = HostState { up_since_ms: Some(0), skew_bound_ms: 0 };

    fn order(n: u128) -> Key {
        Key::Order(OrderId::from_u128(n))
    }

    fn reading(items: &[(Key, i64)], created_mark: i64, count: i64, age_s: f64) -> Reading {
        Reading { items: items.to_vec(), created_mark, count, age_s }
    }

    /// Feeds `readings` every 250 ms from 0 and returns every violation.
    fn sagas(readings: &[Reading], host: HostState) -> Vec<Violation> {
        let mut gauges = Gauges::default();
        let mut found = Vec::new();
        for (i, reading) in readings.iter().enumerate() {
            found.extend(gauges.observe_sagas(i as u64 * 250, reading, host));
        }
        found
    }

    /// An order created at 100 ms, unfinished for 5 s, with gauges set every 2 s as the
    /// service sets them; then finished, and the gauges cleared at the next setting.
    fn honest() -> Vec<Reading> {
        let mut readings = Vec::new();
        let mut gauge = (0, 0.0);
        for i in 0..60 {
            let now = i * 250;
            let unfinished = (100..5_100).contains(&now);
            if now % 2_000 == 0 {
                gauge = if unfinished { (1, (now - 100) as f64 / 1000.0) } else { (0, 0.0) };
            }
            let items = if unfinished { vec![(order(1), 100)] } else { Vec::new() };
            readings.push(reading(&items, i64::from(now >= 100), gauge.0, gauge.1));
        }
        readings
    }

    #[test]
    fn gauges_set_as_the_services_set_them_pass() {
        assert_eq!(sagas(&honest(), UP), Vec::new());
    }

    #[test]
    fn a_stuck_order_the_gauge_does_not_show_fails() {
        let zeroed: Vec<Reading> = honest().into_iter().map(|r| Reading { count: 0, age_s: 0.0, ..r }).collect();
        let found = sagas(&zeroed, UP);
        assert!(found.iter().any(|v| v.evidence.contains("order_sagas_in_flight is 0")), "{found:?}");
        assert!(found.iter().any(|v| v.evidence.contains("order_oldest_saga_age_seconds is 0.000")), "{found:?}");
        assert!(found.iter().all(|v| v.invariant == FIGURES && v.subject == "order"));
    }

    #[test]
    fn an_age_older_than_anything_measured_fails() {
        let scaled: Vec<Reading> = honest().into_iter().map(|r| Reading { age_s: r.age_s * 1000.0, ..r }).collect();
        let found = sagas(&scaled, UP);
        assert!(found.iter().any(|v| v.evidence.contains("can be older than")), "{found:?}");
    }

    #[test]
    fn a_gauge_left_up_when_all_is_quiet_fails() {
        let stuck_at_one: Vec<Reading> = honest().into_iter().map(|r| Reading { count: r.count.max(1), ..r }).collect();
        let found = sagas(&stuck_at_one, UP);
        assert!(found.iter().any(|v| v.evidence.contains("order_sagas_in_flight is 1 and")), "{found:?}");
    }

    #[test]
    fn nothing_is_asserted_of_a_host_down_or_up_for_less_than_the_bound() {
        let zeroed: Vec<Reading> = honest().into_iter().map(|r| Reading { count: 0, age_s: 0.0, ..r }).collect();
        assert_eq!(sagas(&zeroed, HostState { up_since_ms: None, skew_bound_ms: 0 }), Vec::new());
        let mut gauges = Gauges::default();
        let restarted = HostState { up_since_ms: Some(4_000), skew_bound_ms: 0 };
        for (i, reading) in zeroed.iter().enumerate().take(24) {
            assert_eq!(gauges.observe_sagas(i as u64 * 250, reading, restarted), Vec::new(), "at {} ms", i * 250);
        }
    }

    #[test]
    fn a_skewed_clock_widens_the_bounds() {
        // An order stuck from 100 ms, counted on a clock set 3 s back: its age reads 3 s
        // less than it waited.
        let mut readings = Vec::new();
        let mut gauge = (0, 0.0);
        for i in 0..60 {
            let now = i * 250;
            if now % 2_000 == 0 && now >= 100 {
                gauge = (1, (now as f64 - 3_000.0 - 100.0).max(0.0) / 1000.0);
            }
            readings.push(reading(&[(order(1), 100)], 1, gauge.0, gauge.1));
        }
        let found = sagas(&readings, UP);
        assert!(found.iter().any(|v| v.evidence.contains("was at least")), "{found:?}");
        assert_eq!(sagas(&readings, HostState { up_since_ms: Some(0), skew_bound_ms: 3_000 }), Vec::new());
    }

    #[test]
    fn an_outbox_row_at_the_head_the_gauges_do_not_show_fails() {
        let mut gauges = Gauges::default();
        let mut found = Vec::new();
        for i in 0..20u64 {
            let now = i * 250;
            // Row 7 is created at 0 and never delivered; the gauges stay at zero.
            let reading = reading(&[(Key::Row(7), 0), (Key::Row(8), now as i64)], 8, 0, 0.0);
            found.extend(gauges.observe_outbox(ServiceName::Billing, now, &reading, UP));
        }
        assert!(found.iter().any(|v| v.evidence.contains("outbox_depth is 0") && v.subject == "billing"), "{found:?}");
        assert!(found.iter().any(|v| v.evidence.contains("outbox_oldest_age_seconds is 0.000")), "{found:?}");
    }

    #[test]
    fn an_outbox_whose_sequence_moved_is_not_quiet() {
        // Rows come and go between readings: the sequence moves, so a depth of 1 is no lie.
        let mut gauges = Gauges::default();
        for i in 0..20u64 {
            let reading = reading(&[], i as i64, 1, 0.2);
            assert_eq!(gauges.observe_outbox(ServiceName::Order, i * 250, &reading, UP), Vec::new());
        }
        let mut found = Vec::new();
        for i in 20..40u64 {
            found.extend(gauges.observe_outbox(ServiceName::Order, i * 250, &reading(&[], 19, 1, 0.2), UP));
        }
        assert!(found.iter().any(|v| v.evidence.contains("outbox_depth is 1 and")), "{found:?}");
    }
}
