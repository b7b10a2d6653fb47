//! One publisher: publishes its messages as fast as allowed (by `--rate` and, for QoS 1 and 2,
//! by the window of unacknowledged PUBLISHes), stamping each, and times the acknowledgements
//! (PUBACK at QoS 1; PUBREC, PUBREL and PUBCOMP at QoS 2). Retained messages each go to a
//! topic of their own.

use std::sync::Arc;

use anyhow::{anyhow, bail};
use bytes::BytesMut;
use ferrule_mqtt::{Packet, Properties, ProtocolVersion, PubResp, Publish, QoS, TopicName};
use tokio::time::{Instant, sleep_until};

use super::stamp::{PayloadFormat, Stamp, cold_before, is_cold, write_json_payload, write_payload};
use super::{Clock, WRITE_BATCH};
use crate::conn::Conn;
use crate::histogram::Histogram;

/// What one publisher does.
#[derive(Debug)]
pub(super) struct PubJob {
    pub(super) id: u32,
    pub(super) protocol: ProtocolVersion,
    pub(super) topic: TopicName,
    pub(super) qos: QoS,
    pub(super) messages: u32,
    pub(super) payload: usize,
    pub(super) rate: u32,
    pub(super) window: usize,
    pub(super) format: PayloadFormat,
    /// Written into JSON payloads.
    pub(super) run_id: Arc<str>,
    /// Every this many messages one is cold (JSON only); 0 = none.
    pub(super) cold_every: u32,
    /// Publish retained, message `seq` to `{topic}/m{seq}`.
    pub(super) retain: bool,
    /// End with a PINGREQ round trip, so that the broker has handled every message (QoS 0
    /// has no acknowledgement to wait for).
    pub(super) sync_at_end: bool,
}

impl PubJob {
    /// How many messages may have been sent `elapsed_ns` after the start.
    fn allowed(&self, elapsed_ns: u64) -> u32 {
        if self.rate == 0 {
            return self.messages;
        }
        let due = u128::from(elapsed_ns) * u128::from(self.rate) / 1_000_000_000 + 1;
        u32::try_from(due).unwrap_or(u32::MAX).min(self.messages)
    }

    /// Writes the payload of message `seq`.
    fn payload(&self, buf: &mut BytesMut, stamp: Stamp) {
        match self.format {
            PayloadFormat::Binary => write_payload(buf, self.payload, stamp),
            PayloadFormat::Json => write_json_payload(
                buf,
                self.payload,
                stamp,
                &self.run_id,
                is_cold(stamp.seq, self.cold_every),
            ),
        }
    }

    /// When message `seq` is due, in nanoseconds after the start.
    fn due_ns(&self, seq: u32) -> u64 {
        let ns = u128::from(seq) * 1_000_000_000 / u128::from(self.rate.max(1));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

#[derive(Debug, Default)]
pub(super) struct PubStats {
    pub(super) sent: u64,
    /// Sent messages that are not cold: what a `WHERE temp > 20` lets through.
    pub(super) passing: u64,
    pub(super) acked: u64,
    pub(super) ack_errors: u64,
    pub(super) unknown_acks: u64,
    pub(super) puback: Histogram,
    pub(super) finished_ns: u64,
    pub(super) timed_out: bool,
}

impl PubStats {
    pub(super) fn merge(&mut self, other: &PubStats) {
        self.sent += other.sent;
        self.passing += other.passing;
        self.acked += other.acked;
        self.ack_errors += other.ack_errors;
        self.unknown_acks += other.unknown_acks;
        self.puback.merge(&other.puback);
        self.finished_ns = self.finished_ns.max(other.finished_ns);
        self.timed_out |= other.timed_out;
    }
}

pub(super) async fn publish(
    mut conn: Conn,
    job: PubJob,
    clock: Clock,
    deadline: Instant,
) -> (PubStats, Option<anyhow::Error>) {
    let mut stats = PubStats::default();
    let mut result = publish_loop(&mut conn, &job, clock, deadline, &mut stats).await;
    if result.is_ok() && !stats.timed_out && job.sync_at_end {
        result = match tokio::time::timeout_at(deadline, conn.sync()).await {
            Ok(synced) => synced,
            Err(_) => {
                stats.timed_out = true;
                Ok(())
            }
        };
    }
    stats.finished_ns = clock.now_ns();
    if stats.timed_out {
        // Publishes still in the output buffer never left; they are not sent.
        let publish_len =
            ferrule_mqtt::encoded_len(&Packet::Publish(sample_publish(&job)), job.protocol);
        let unsent = conn.unwritten().div_ceil(publish_len.max(1)) as u64;
        stats.sent = stats.sent.saturating_sub(unsent);
    }
    stats.passing = stats.sent - cold_before(stats.sent, job.cold_every);
    conn.close().await;
    (stats, result.err())
}

fn sample_publish(job: &PubJob) -> Publish {
    let mut payload = BytesMut::new();
    job.payload(
        &mut payload,
        Stamp {
            sent_ns: 0,
            publisher: job.id,
            seq: 0,
        },
    );
    Publish {
        dup: false,
        qos: job.qos,
        retain: job.retain,
        topic: Some(job.topic.clone()),
        packet_id: (job.qos != QoS::AtMostOnce).then_some(1),
        payload: payload.freeze(),
        properties: Properties::default(),
    }
}

async fn publish_loop(
    conn: &mut Conn,
    job: &PubJob,
    clock: Clock,
    deadline: Instant,
    stats: &mut PubStats,
) -> anyhow::Result<()> {
    let acked = job.qos != QoS::AtMostOnce;
    // Send time + 1 of the unacknowledged publish with each packet id; 0 = free.
    let mut inflight: Vec<u64> = if acked { vec![0; 1 << 16] } else { Vec::new() };
    let mut in_flight = 0usize;
    let mut last_id: u16 = 0;
    let mut seq: u32 = 0;
    let mut scratch = BytesMut::new();
    let start_ns = clock.now_ns();
    loop {
        tokio::task::coop::consume_budget().await;
        let allowed = job.allowed(clock.now_ns() - start_ns);
        while seq < allowed && conn.unwritten() < WRITE_BATCH && in_flight < job.window {
            let sent_ns = clock.now_ns();
            let stamp = Stamp {
                sent_ns,
                publisher: job.id,
                seq,
            };
            job.payload(&mut scratch, stamp);
            let packet_id = if acked {
                last_id = next_free_id(&inflight, last_id);
                inflight[usize::from(last_id)] = sent_ns + 1;
                in_flight += 1;
                Some(last_id)
            } else {
                None
            };
            let topic = if job.retain {
                TopicName::new(format!("{}/m{seq}", job.topic))
                    .map_err(|e| anyhow!("topic {}/m{seq}: {e}", job.topic))?
            } else {
                job.topic.clone()
            };
            conn.queue(&Packet::Publish(Publish {
                dup: false,
                qos: job.qos,
                retain: job.retain,
                topic: Some(topic),
                packet_id,
                payload: scratch.split().freeze(),
                properties: Properties::default(),
            }))?;
            seq += 1;
            stats.sent += 1;
        }
        if seq == job.messages && conn.unwritten() == 0 && in_flight == 0 {
            return Ok(());
        }
        let next_slot = (job.rate > 0 && seq < job.messages && seq >= allowed)
            .then(|| clock.instant(start_ns + job.due_ns(seq)));
        let ping_at = conn.ping_at();
        tokio::select! {
            biased;
            () = sleep_until(deadline) => {
                stats.timed_out = true;
                return Ok(());
            }
            io = conn.pump() => {
                io?;
            }
            () = sleep_until(next_slot.unwrap_or(deadline)), if next_slot.is_some() => {}
            () = sleep_until(ping_at.unwrap_or(deadline)), if ping_at.is_some() => {
                conn.queue_ping()?;
            }
        }
        let now = clock.now_ns();
        while let Some(packet) = conn.next_packet()? {
            match packet {
                // QoS 1 ends with PUBACK; QoS 2 with PUBCOMP, after PUBREC and our PUBREL.
                Packet::PubAck(ack) | Packet::PubComp(ack) => {
                    match inflight.get_mut(usize::from(ack.packet_id)) {
                        Some(slot) if *slot != 0 => {
                            stats.puback.record(now.saturating_sub(*slot - 1));
                            *slot = 0;
                            in_flight -= 1;
                            stats.acked += 1;
                            if ack.reason.is_error() {
                                stats.ack_errors += 1;
                            }
                        }
                        _ => stats.unknown_acks += 1,
                    }
                }
                Packet::PubRec(rec) => match inflight.get_mut(usize::from(rec.packet_id)) {
                    // A refusal ends the exchange: no PUBREL follows (MQTT 5, 4.3.3).
                    Some(slot) if *slot != 0 && rec.reason.is_error() => {
                        *slot = 0;
                        in_flight -= 1;
                        stats.ack_errors += 1;
                    }
                    Some(slot) if *slot != 0 => {
                        conn.queue(&Packet::PubRel(PubResp::new(rec.packet_id)))?;
                    }
                    _ => stats.unknown_acks += 1,
                },
                Packet::PingResp => {}
                Packet::Disconnect(d) => bail!("the broker sent DISCONNECT: {}", d.reason),
                other => bail!("unexpected {} from the broker", other.kind()),
            }
        }
    }
}

/// The next packet identifier after `last` that is not in flight. The window is smaller than
/// the identifier space, so one is always free.
fn next_free_id(inflight: &[u64], last: u16) -> u16 {
    let mut id = last;
    loop {
        id = id.wrapping_add(1).max(1);
        if inflight[usize::from(id)] == 0 || id == last {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_spread_messages() {
        let job = PubJob {
            id: 0,
            protocol: ProtocolVersion::V311,
            topic: TopicName::new("a").expect("valid topic"),
            qos: QoS::AtMostOnce,
            messages: 1000,
            payload: 16,
            rate: 100,
            window: 1,
            format: PayloadFormat::Binary,
            run_id: "r".into(),
            cold_every: 0,
            retain: false,
            sync_at_end: false,
        };
        assert_eq!(job.allowed(0), 1);
        assert_eq!(job.allowed(999_999_999), 100);
        assert_eq!(job.allowed(1_000_000_000), 101);
        assert_eq!(job.allowed(u64::MAX), 1000);
        assert_eq!(job.due_ns(100), 1_000_000_000);
    }

    #[test]
    fn packet_ids_skip_zero_and_those_in_flight() {
        let mut inflight = vec![0u64; 1 << 16];
        assert_eq!(next_free_id(&inflight, 0), 1);
        assert_eq!(next_free_id(&inflight, u16::MAX), 1);
        inflight[2] = 5;
        assert_eq!(next_free_id(&inflight, 1), 3);
    }
}
