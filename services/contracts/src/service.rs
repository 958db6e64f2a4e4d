//! The six services by name: the one spelling of a service everywhere (peers, the gateway's
//! upstreams, the saga's participants, the simulation's hosts and reports).

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A service of the store. Its text (`as_str`, and serde's spelling) is its lowercase
/// name: the host name, the `shop --services` word, the database file's stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    Gateway,
    Order,
    Billing,
    Warehouse,
    Delivery,
    Notification,
}

impl ServiceName {
    /// Every service, in port order (gateway first).
    pub const ALL: [ServiceName; 6] = [
        ServiceName::Gateway,
        ServiceName::Order,
        ServiceName::Billing,
        ServiceName::Warehouse,
        ServiceName::Delivery,
        ServiceName::Notification,
    ];

    /// The port the gateway serves `/metrics` and `/health/*` on (offset from the base
    /// port: 8086): its public port is the store's door, where they answer 404.
    pub const GATEWAY_ADMIN_PORT_OFFSET: u16 = 6;

    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceName::Gateway => "gateway",
            ServiceName::Order => "order",
            ServiceName::Billing => "billing",
            ServiceName::Warehouse => "warehouse",
            ServiceName::Delivery => "delivery",
            ServiceName::Notification => "notification",
        }
    }

    pub fn parse(text: &str) -> Option<ServiceName> {
        ServiceName::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Its place in [`ServiceName::ALL`].
    pub fn index(self) -> usize {
        match self {
            ServiceName::Gateway => 0,
            ServiceName::Order => 1,
            ServiceName::Billing => 2,
            ServiceName::Warehouse => 3,
            ServiceName::Delivery => 4,
            ServiceName::Notification => 5,
        }
    }

    /// Offset from the base port: gateway 8080, order 8081, … notification 8085.
    pub fn port_offset(self) -> u16 {
        self.index() as u16
    }
}

/// Ordered by name, as their text sorts: a map keyed by services keeps the order it had
/// keyed by their names (reports and digests do not change).
impl Ord for ServiceName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for ServiceName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_text_and_json() {
        for (index, service) in ServiceName::ALL.into_iter().enumerate() {
            assert_eq!(service.index(), index);
            assert_eq!(ServiceName::parse(service.as_str()), Some(service));
            let json = serde_json::to_string(&service).unwrap();
            assert_eq!(json, format!("\"{service}\""));
            assert_eq!(serde_json::from_str::<ServiceName>(&json).unwrap(), service);
        }
        assert_eq!(ServiceName::parse("Billing"), None);
    }

    #[test]
    fn services_sort_by_name() {
        let mut sorted = ServiceName::ALL;
        sorted.sort();
        let names: Vec<&str> = sorted.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["billing", "delivery", "gateway", "notification", "order", "warehouse"]);
    }
}
