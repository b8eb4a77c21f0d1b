//! T.38's packets on UDP (UDPTL, T.38 section 9.1): each datagram carries one IFP packet
//! and copies of the ones before it (redundancy), so that a datagram lost on the way
//! costs nothing while the next one arrives. The codec is the `udptl` crate's; what a
//! call keeps (its sequence numbers, the copies) is here.

use std::collections::VecDeque;

use udptl::{RedundancyReceiver, UdptlPacket};

/// Earlier packets carried in each datagram.
const REDUNDANCY: usize = 3;

/// The smallest datagram T.38 lets an end ask for (enough for one full HDLC frame).
pub const MIN_DATAGRAM: usize = 160;

/// What we offer to take (`T38FaxMaxDatagram`), and assume of an end that does not say.
pub const MAX_DATAGRAM: usize = 400;

/// One call's UDPTL: sending (sequence numbers, recent packets) and receiving (in order,
/// each packet once, lost ones filled in from the copies).
#[derive(Debug)]
pub struct Session {
    seq: u16,
    recent: VecDeque<Vec<u8>>,
    max_datagram: usize,
    received: RedundancyReceiver,
}

impl Session {
    /// A session whose datagrams are at most `max_datagram` bytes (kept within T.38's
    /// bounds whatever the far end said).
    pub fn new(max_datagram: usize) -> Session {
        Session {
            seq: 0,
            recent: VecDeque::with_capacity(REDUNDANCY + 1),
            max_datagram: max_datagram.clamp(MIN_DATAGRAM, 1400),
            received: RedundancyReceiver::new(),
        }
    }

    /// The datagram carrying `ifp` (and as many earlier packets as fit); `None` if the
    /// packet alone is too big for the far end (T.30 then asks again, or gives up).
    pub fn frame(&mut self, ifp: &[u8]) -> Option<Vec<u8>> {
        let mut copies: Vec<Vec<u8>> = self.recent.iter().rev().cloned().collect();
        let datagram = loop {
            let p = UdptlPacket::with_redundancy(self.seq, ifp.to_vec(), copies.clone());
            let bytes = p.encode();
            if bytes.len() <= self.max_datagram {
                break bytes;
            }
            copies.pop()?;
        };
        self.seq = self.seq.wrapping_add(1);
        self.recent.push_back(ifp.to_vec());
        while self.recent.len() > REDUNDANCY {
            self.recent.pop_front();
        }
        Some(datagram)
    }

    /// The packets a datagram brings that were not had before, oldest first, each with
    /// its sequence number; `None` if it is not a UDPTL datagram.
    pub fn receive(&mut self, datagram: &[u8]) -> Option<Vec<(u16, Vec<u8>)>> {
        let packet = UdptlPacket::decode(datagram).ok()?;
        Some(
            self.received
                .receive(&packet)
                .into_iter()
                .map(|r| (r.sequence, r.payload))
                .collect(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_datagram_is_filled_in_from_the_next_ones_copies() {
        let (mut tx, mut rx) = (Session::new(MAX_DATAGRAM), Session::new(MAX_DATAGRAM));
        let d: Vec<Vec<u8>> = (0u8..4).map(|i| tx.frame(&[i; 10]).unwrap()).collect();
        assert_eq!(rx.receive(&d[0]).unwrap(), vec![(0, vec![0; 10])]);
        // Datagram 1 is lost; 2 carries it.
        assert_eq!(
            rx.receive(&d[2]).unwrap(),
            vec![(1, vec![1; 10]), (2, vec![2; 10])]
        );
        // A duplicate (or a late one) brings nothing new.
        assert!(rx.receive(&d[1]).unwrap().is_empty());
        assert_eq!(rx.receive(&d[3]).unwrap(), vec![(3, vec![3; 10])]);
        assert!(rx.receive(b"\x80\x00").is_none(), "not UDPTL");
    }

    #[test]
    fn copies_are_dropped_to_fit_the_far_ends_datagram_size() {
        let mut tx = Session::new(MIN_DATAGRAM);
        for _ in 0..3 {
            tx.frame(&[7; 60]).unwrap();
        }
        let d = tx.frame(&[8; 60]).unwrap();
        assert!(d.len() <= MIN_DATAGRAM, "{}", d.len());
        let p = UdptlPacket::decode(&d).unwrap();
        assert_eq!(p.redundant_ifps().len(), 1);
        assert!(tx.frame(&[9; 200]).is_none(), "the packet alone is too big");
    }
}
