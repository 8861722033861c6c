//! The limits each client address is held to: connects per second
//! (`limits.connect_rate_per_ip`, a token bucket) and connections open at once
//! (`limits.connections_per_ip`, HTTP connections and sessions alike). One table for both, under
//! one std mutex: no `.await` happens under it, and each connect touches it twice (in and out).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::rate::RateLimit;

/// Addresses tracked at once at most. Beyond that (a flood from more addresses than this),
/// addresses with nothing open and a full bucket again are forgotten, and an address that
/// still finds no room is not counted: a limit per address cannot stop an attack from that many
/// anyway, and the hub-wide limits still hold.
const MAX_ADDRESSES: usize = 65_536;

/// Why an address may not connect now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverLimit {
    /// Over `limits.connect_rate_per_ip`.
    Rate,
    /// `limits.connections_per_ip` already open.
    Open,
}

struct Entry {
    connects: RateLimit,
    open: usize,
}

pub struct AddressLimits {
    rate: u32,
    most_open: usize,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl AddressLimits {
    pub fn new(rate: u32, most_open: usize) -> Arc<Self> {
        Arc::new(AddressLimits { rate, most_open, table: Mutex::default() })
    }

    /// A connect from `address`: a token of its rate and one of its open places, held by the
    /// slot until it is dropped.
    pub fn connect(self: &Arc<Self>, address: IpAddr) -> Result<AddressSlot, OverLimit> {
        let key = super::key(address);
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if !table.contains_key(&key) && table.len() >= MAX_ADDRESSES {
            table.retain(|_, entry| entry.open > 0 || !entry.connects.is_full_at(now));
            if table.len() >= MAX_ADDRESSES {
                return Ok(AddressSlot { limits: None, key });
            }
        }
        let entry = table.entry(key).or_insert_with(|| Entry { connects: RateLimit::per_second(self.rate), open: 0 });
        if entry.open >= self.most_open {
            return Err(OverLimit::Open);
        }
        if !entry.connects.admit_at(now) {
            return Err(OverLimit::Rate);
        }
        entry.open += 1;
        Ok(AddressSlot { limits: Some(self.clone()), key })
    }

    /// Connections open from `address` now.
    #[cfg(test)]
    fn open(&self, address: IpAddr) -> usize {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.get(&super::key(address)).map_or(0, |entry| entry.open)
    }
}

/// One open connection (or, behind a trusted proxy, one request or session) of a client
/// address; its place is given back when this is dropped.
pub struct AddressSlot {
    /// `None` when the address could not be tracked (see [`MAX_ADDRESSES`]).
    limits: Option<Arc<AddressLimits>>,
    key: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(limits) = &self.limits else { return };
        let mut table = limits.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = table.get_mut(&self.key) {
            entry.open = entry.open.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_holds_at_most_its_open_places_and_gets_them_back() {
        let limits = AddressLimits::new(1000, 3);
        let a = ip("10.0.0.1");
        let held: Vec<AddressSlot> = (0..3).map(|_| limits.connect(a).unwrap()).collect();
        assert_eq!(limits.connect(a).err(), Some(OverLimit::Open));
        assert!(limits.connect(ip("10.0.0.2")).is_ok(), "another address has its own places");
        drop(held);
        assert_eq!(limits.open(a), 0);
        assert!(limits.connect(a).is_ok());
    }

    #[test]
    fn connects_beyond_the_rate_are_refused() {
        let limits = AddressLimits::new(3, 100);
        let a = ip("10.0.0.1");
        let results: Vec<_> = (0..10).map(|_| limits.connect(a).map(drop)).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        assert_eq!(results[3], Err(OverLimit::Rate));
    }

    /// Every address of one /64 is one client: rotating through them does not escape the limit.
    #[test]
    fn an_ipv6_client_cannot_escape_by_changing_address_within_its_64() {
        let limits = AddressLimits::new(1000, 2);
        let _a = limits.connect(ip("2001:db8:0:1::1")).unwrap();
        let _b = limits.connect(ip("2001:db8:0:1::2")).unwrap();
        assert_eq!(limits.connect(ip("2001:db8:0:1:ffff::3")).err(), Some(OverLimit::Open));
        assert!(limits.connect(ip("2001:db8:0:2::1")).is_ok(), "the next /64 is another client");
    }
}
