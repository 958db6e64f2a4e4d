//! Platform's planted bug (`crate::bugs`), compiled only with the `planted-bugs` feature:
//! the body of the outbox relay's hook, taken only while a run plants it.

use crate::bugs::{active, Bug};
use crate::outbox::Relay;
use contracts::ServiceName;

/// `DirectNotification`: billing's notifications are sent once, directly, whatever became
/// of them: an event leaves billing's outbox delivered or not.
pub(crate) fn direct_notification(relay: &Relay) -> bool {
    active(Bug::DirectNotification) && relay.client.service() == ServiceName::Billing
}
