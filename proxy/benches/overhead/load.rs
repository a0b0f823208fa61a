//! The load client: N connections, each sending one `find` and waiting for its reply before
//! sending the next (closed loop, like a driver with one operation in flight per
//! connection), for a warm-up and then a measured period.
//!
//! Latency is the time from writing a request to having read its whole reply, recorded in
//! nanoseconds in one HDR histogram per connection and merged at the end. Every reply is
//! checked: an OP_MSG whose `responseTo` is the request's id.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::wire::{find_request, stamp, FrameReader, OP_MSG};

/// How one run goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadPlan {
    pub clients: usize,
    pub warm_up: Duration,
    pub measure: Duration,
}

/// What one run measured.
pub(crate) struct LoadResult {
    /// Requests answered in the measured period.
    pub measured: u64,
    /// Requests sent in all, warm-up included (what a capturing proxy should have seen).
    pub sent: u64,
    pub elapsed: Duration,
    /// Nanoseconds per round trip, measured period only.
    pub latency: Histogram<u64>,
}

impl LoadResult {
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.measured as f64 / self.elapsed.as_secs_f64()
    }

    /// Add another run's figures: requests and time add up, latencies merge.
    pub(crate) fn absorb(&mut self, other: &LoadResult) {
        self.measured += other.measured;
        self.sent += other.sent;
        self.elapsed += other.elapsed;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// A quantile in microseconds.
    pub(crate) fn micros_at(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Variants of the request, differing in one value, cycled through.
const VARIANTS: usize = 64;

pub(crate) fn histogram() -> Histogram<u64> {
    // 1 ns to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant histogram bounds")
}

/// Run `plan` against `target`.
pub(crate) async fn run(target: SocketAddr, plan: LoadPlan) -> anyhow::Result<LoadResult> {
    let mut streams = Vec::with_capacity(plan.clients);
    for _ in 0..plan.clients {
        let stream = TcpStream::connect(target)
            .await
            .with_context(|| format!("connecting to {target}"))?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let started = Instant::now();
    let measure_from = started + plan.warm_up;
    let end = measure_from + plan.measure;
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(index, stream)| tokio::spawn(client(stream, index, measure_from, end)))
        .collect();
    sum(plan, tasks).await
}

/// The clients' results, added up once every client task has ended.
pub(crate) async fn sum(
    plan: LoadPlan,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<LoadResult>>>,
) -> anyhow::Result<LoadResult> {
    let mut result = LoadResult {
        measured: 0,
        sent: 0,
        elapsed: plan.measure,
        latency: histogram(),
    };
    for task in tasks {
        let one = task.await.context("a client task panicked")??;
        result.measured += one.measured;
        result.sent += one.sent;
        result.latency.add(&one.latency)?;
    }
    Ok(result)
}

async fn client(
    mut stream: TcpStream,
    index: usize,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<LoadResult> {
    let mut requests: Vec<Vec<u8>> = (0..VARIANTS)
        .map(|variant| find_request(10_000 + (index * VARIANTS + variant) as i64))
        .collect();
    let mut reader = FrameReader::new();
    let mut latency = histogram();
    let (mut sent, mut measured) = (0u64, 0u64);
    let mut request_id = 1i32;
    loop {
        let sent_at = Instant::now();
        if sent_at >= end {
            break;
        }
        let request = &mut requests[sent as usize % VARIANTS];
        stamp(request, request_id, 0);
        stream.write_all(request).await.context("sending")?;
        sent += 1;
        let reply = reader
            .next(&mut stream)
            .await?
            .context("the target closed the connection")?;
        let took = sent_at.elapsed();
        ensure!(reply.op_code == OP_MSG, "reply opcode {}", reply.op_code);
        ensure!(
            reply.response_to == request_id,
            "reply to {} while waiting for {request_id}",
            reply.response_to
        );
        if sent_at >= measure_from {
            measured += 1;
            latency.saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        }
        request_id = request_id.wrapping_add(1);
    }
    Ok(LoadResult {
        measured,
        sent,
        elapsed: end - measure_from,
        latency,
    })
}
