//! The wire format: every message is one fixed 16-byte frame.
//!
//! Little endian: `kind: u8, fd_count: u8, reserved: [0; 2], arg: u32, seq: u64`.
//! `arg` is the port of [`Message::Ready`] and the grace left, in
//! milliseconds, of [`Message::Stop`]; `seq` numbers connection handoffs so
//! that an acknowledgement names the one it answers, and pings so that a pong
//! names the one it answers. `fd_count` repeats what the kind implies, so that
//! the receiver can check it against the fds that came; for
//! [`Message::Connections`] it is the count itself.

use super::ChannelError;

/// Size of every frame on the channel, in bytes.
pub const FRAME_LEN: usize = 16;

/// The most connections one [`Message::Connections`] frame carries. The
/// kernel takes up to 253 fds per `sendmsg` (`SCM_MAX_FD`); the bound here is
/// what every receive makes room for (`scm_rights::MAX_FDS_PER_FRAME`, a
/// control buffer of a few hundred bytes on the stack), and more than the
/// dispatcher ever sends at once (a worker's window, 8).
pub const MAX_CONNECTIONS_PER_FRAME: usize = 32;

/// One message of the protocol. Each kind says whether a socket travels with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Master → worker, with one accepted TCP connection to serve
    /// (`handoff --pass socket`). The worker answers [`Message::Ack`] or
    /// [`Message::Reject`] with the same `seq`.
    Connection {
        /// Handoff number, echoed by the acknowledgement.
        seq: u64,
    },
    /// Master → worker, with `count` accepted TCP connections in one
    /// `sendmsg` (`handoff --pass socket`, when one wake-up of the master
    /// accepted several for this worker), numbered `seq`, `seq + 1`, …,
    /// `seq + count - 1` in the order of their fds. `count` is
    /// 2..=[`MAX_CONNECTIONS_PER_FRAME`]: a batch of one is a
    /// [`Message::Connection`]. The worker acknowledges them as if they had
    /// come one by one (a cumulative [`Message::Ack`] of the last, or a
    /// [`Message::Reject`] of each).
    Connections {
        /// Handoff number of the first connection.
        seq: u64,
        /// How many connections (and fds) the frame carries.
        count: u8,
    },
    /// Master → worker, with one listening socket to accept on
    /// (`--pass listener` and `--pass reuseport`).
    Listener,
    /// Master → worker: stop accepting, finish in-flight requests within
    /// `grace_ms`, exit 0. The master's stop has one deadline for the whole
    /// cluster; the worker's share is what is left of it when the frame goes
    /// out, so that the worker closes what is left before the master's
    /// SIGKILL would cut it.
    Stop {
        /// How long the requests in flight may still take, in milliseconds.
        grace_ms: u32,
    },
    /// Worker → master: the worker is serving. `port` is its own port in
    /// `proxy` mode, `None` when it serves sockets handed to it.
    Ready {
        /// The worker's own listening port, if it has one.
        port: Option<u16>,
    },
    /// Worker → master: connection `seq`, and every connection handed to this
    /// worker before it, arrived (acknowledgements are cumulative: a channel
    /// keeps its order); the master may close its copies.
    Ack {
        /// The last handoff being acknowledged.
        seq: u64,
    },
    /// Worker → master: connection `seq` could not be taken (its fd did not
    /// arrive, e.g. the worker is at its fd limit); hand it to another worker.
    Reject {
        /// The handoff being refused.
        seq: u64,
    },
    /// Master → worker, every few seconds: are you alive? The worker's event
    /// loop answers [`Message::Pong`] with the same `seq`; a worker that does
    /// not answer within `--worker-timeout` is killed and replaced.
    Ping {
        /// Ping number, echoed by the pong.
        seq: u64,
    },
    /// Worker → master: the answer to [`Message::Ping`] `seq`.
    Pong {
        /// The ping being answered.
        seq: u64,
    },
}

impl Message {
    /// How many fds travel with this kind of message.
    pub fn fd_count(&self) -> usize {
        match self {
            Message::Connection { .. } | Message::Listener => 1,
            Message::Connections { count, .. } => usize::from(*count),
            _ => 0,
        }
    }

    /// The handoff numbers of the connections this message carries, first
    /// and last; `None` for a message that carries none.
    pub fn handoffs(&self) -> Option<(u64, u64)> {
        match *self {
            Message::Connection { seq } => Some((seq, seq)),
            // No overflow: `decode` refuses a batch whose last seq would
            // pass u64::MAX, and the dispatcher numbers from 1 upwards.
            Message::Connections { seq, count } => Some((seq, seq + (u64::from(count) - 1))),
            _ => None,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Message::Connection { .. } => 1,
            Message::Listener => 2,
            Message::Stop { .. } => 3,
            Message::Ready { .. } => 4,
            Message::Ack { .. } => 5,
            Message::Reject { .. } => 6,
            Message::Ping { .. } => 7,
            Message::Pong { .. } => 8,
            Message::Connections { .. } => 9,
        }
    }

    /// The 16 bytes that carry this message.
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let (arg, seq) = match *self {
            Message::Ready { port } => (u32::from(port.unwrap_or(0)), 0),
            Message::Stop { grace_ms } => (grace_ms, 0),
            Message::Connection { seq }
            | Message::Ack { seq }
            | Message::Reject { seq }
            | Message::Ping { seq }
            | Message::Pong { seq }
            | Message::Connections { seq, .. } => (0, seq),
            Message::Listener => (0, 0),
        };
        let mut frame = [0u8; FRAME_LEN];
        frame[0] = self.kind();
        frame[1] = self.fd_count() as u8;
        frame[4..8].copy_from_slice(&arg.to_le_bytes());
        frame[8..16].copy_from_slice(&seq.to_le_bytes());
        frame
    }

    /// Parses one frame; checks its length, its kind, that its announced fd
    /// count is the one its kind carries, and that every byte its kind does
    /// not use is zero.
    pub fn decode(frame: &[u8]) -> Result<Message, ChannelError> {
        let frame: &[u8; FRAME_LEN] = frame
            .try_into()
            .map_err(|_| ChannelError::BadLength(frame.len()))?;
        let arg = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(frame[8..16].try_into().expect("8 bytes"));
        let message = match frame[0] {
            1 => Message::Connection { seq },
            2 => Message::Listener,
            3 => Message::Stop { grace_ms: arg },
            4 => Message::Ready {
                port: match u16::try_from(arg) {
                    Ok(0) => None,
                    Ok(port) => Some(port),
                    Err(_) => return Err(ChannelError::Malformed("port above 65535")),
                },
            },
            5 => Message::Ack { seq },
            6 => Message::Reject { seq },
            7 => Message::Ping { seq },
            8 => Message::Pong { seq },
            9 => {
                let count = frame[1];
                if !(2..=MAX_CONNECTIONS_PER_FRAME).contains(&usize::from(count)) {
                    return Err(ChannelError::Malformed("batch of fewer than 2 or too many"));
                }
                if seq.checked_add(u64::from(count) - 1).is_none() {
                    return Err(ChannelError::Malformed("batch numbered past u64::MAX"));
                }
                Message::Connections { seq, count }
            }
            kind => return Err(ChannelError::UnknownKind(kind)),
        };
        if usize::from(frame[1]) != message.fd_count() {
            return Err(ChannelError::Malformed("fd count does not match the kind"));
        }
        // One encoding per message: fields its kind does not use must be zero.
        if message.encode() != *frame {
            return Err(ChannelError::Malformed("unused fields are not zero"));
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_messages() -> Vec<Message> {
        vec![
            Message::Connection { seq: 7 },
            Message::Connections { seq: 8, count: 2 },
            Message::Connections {
                seq: u64::MAX - 31,
                count: MAX_CONNECTIONS_PER_FRAME as u8,
            },
            Message::Listener,
            Message::Stop { grace_ms: 5000 },
            Message::Stop { grace_ms: u32::MAX },
            Message::Ready { port: Some(8080) },
            Message::Ready { port: None },
            Message::Ack { seq: u64::MAX },
            Message::Reject { seq: 1 },
            Message::Ping { seq: 2 },
            Message::Pong { seq: u64::MAX },
        ]
    }

    /// Every message survives encode then decode unchanged.
    #[test]
    fn frames_round_trip() {
        for message in all_messages() {
            assert_eq!(Message::decode(&message.encode()).unwrap(), message);
        }
    }

    /// The bytes of one message, as the wire format above spells them: a
    /// change of layout breaks this test, not only the round trip.
    #[test]
    fn wire_format_is_stable() {
        let mut expected = [0u8; FRAME_LEN];
        expected[0] = 1;
        expected[1] = 1;
        expected[8] = 42;
        assert_eq!(Message::Connection { seq: 42 }.encode(), expected);
        let mut expected = [0u8; FRAME_LEN];
        expected[0] = 4;
        expected[4..6].copy_from_slice(&8080u16.to_le_bytes());
        assert_eq!(Message::Ready { port: Some(8080) }.encode(), expected);
        let mut expected = [0u8; FRAME_LEN];
        expected[0] = 9;
        expected[1] = 5;
        expected[8] = 42;
        assert_eq!(
            Message::Connections { seq: 42, count: 5 }.encode(),
            expected
        );
    }

    /// A batch frame says how many fds come, within 2..=MAX; a batch of one
    /// (that is a `Connection`), of none, of too many, or numbered past
    /// u64::MAX is malformed.
    #[test]
    fn bad_batches_are_rejected() {
        let batch = |count: u8, seq: u64| {
            let mut frame = Message::Connections { seq: 0, count: 2 }.encode();
            frame[1] = count;
            frame[8..16].copy_from_slice(&seq.to_le_bytes());
            Message::decode(&frame)
        };
        for count in [0, 1, MAX_CONNECTIONS_PER_FRAME as u8 + 1, u8::MAX] {
            assert!(
                matches!(batch(count, 1), Err(ChannelError::Malformed(_))),
                "count {count}"
            );
        }
        assert!(matches!(
            batch(2, u64::MAX),
            Err(ChannelError::Malformed(_))
        ));
        assert_eq!(
            batch(2, u64::MAX - 1).unwrap().handoffs(),
            Some((u64::MAX - 1, u64::MAX))
        );
    }

    /// Short, long, unknown and self-contradicting frames are typed errors.
    #[test]
    fn bad_frames_are_rejected() {
        let good = Message::Ack { seq: 3 }.encode();
        assert!(matches!(
            Message::decode(&good[..15]),
            Err(ChannelError::BadLength(15))
        ));
        assert!(matches!(
            Message::decode(&[0; 17]),
            Err(ChannelError::BadLength(17))
        ));
        let mut kind = good;
        kind[0] = 99;
        assert!(matches!(
            Message::decode(&kind),
            Err(ChannelError::UnknownKind(99))
        ));
        let mut count = good;
        count[1] = 1;
        assert!(matches!(
            Message::decode(&count),
            Err(ChannelError::Malformed(_))
        ));
        let mut reserved = good;
        reserved[3] = 1;
        assert!(matches!(
            Message::decode(&reserved),
            Err(ChannelError::Malformed(_))
        ));
    }

    proptest::proptest! {
        /// Any bytes at all decode to a message or a typed error, never a
        /// panic; and what decodes encodes back to the same bytes.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Ok(message) = Message::decode(&bytes) {
                proptest::prop_assert_eq!(&message.encode()[..], &bytes[..]);
            }
        }

        /// Every message survives encode then decode, whatever its fields.
        #[test]
        fn round_trip_any_fields(seq in proptest::num::u64::ANY, port in proptest::num::u16::ANY, kind in 0..8u8) {
            let message = match kind {
                0 => Message::Connection { seq },
                1 => Message::Listener,
                2 => Message::Stop { grace_ms: port.into() },
                3 => Message::Ready { port: (port != 0).then_some(port) },
                4 => Message::Ack { seq },
                5 => Message::Reject { seq },
                6 => Message::Ping { seq },
                _ => Message::Pong { seq },
            };
            proptest::prop_assert_eq!(Message::decode(&message.encode()).unwrap(), message);
        }

        /// A batch frame: every valid (seq, count) survives encode then
        /// decode, announces `count` fds, and numbers exactly `count`
        /// consecutive handoffs; every other count, or a numbering past
        /// u64::MAX, is a typed error, never a panic.
        #[test]
        fn batch_frame(seq in proptest::num::u64::ANY, count in proptest::num::u8::ANY) {
            let mut frame = [0u8; FRAME_LEN];
            frame[0] = 9;
            frame[1] = count;
            frame[8..16].copy_from_slice(&seq.to_le_bytes());
            let valid = (2..=MAX_CONNECTIONS_PER_FRAME).contains(&usize::from(count))
                && seq.checked_add(u64::from(count) - 1).is_some();
            match Message::decode(&frame) {
                Ok(message) => {
                    proptest::prop_assert!(valid);
                    proptest::prop_assert_eq!(message, Message::Connections { seq, count });
                    proptest::prop_assert_eq!(message.encode(), frame);
                    proptest::prop_assert_eq!(message.fd_count(), usize::from(count));
                    let (first, last) = message.handoffs().expect("a batch carries handoffs");
                    proptest::prop_assert_eq!(first, seq);
                    proptest::prop_assert_eq!(last - first + 1, u64::from(count));
                }
                Err(err) => {
                    proptest::prop_assert!(!valid, "{:?}", err);
                    proptest::prop_assert!(matches!(err, ChannelError::Malformed(_)), "{:?}", err);
                }
            }
        }
    }
}
