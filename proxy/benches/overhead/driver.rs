//! The driver load: the Rust `mongodb` driver, as an application uses it. One client with a
//! pool of N connections and N tasks, each running `find_one` (filter, sort, projection) and
//! waiting for it before the next, for a warm-up and then a measured period.
//!
//! Unlike the raw load, every request carries what a driver adds (`lsid`, `$db`, a read
//! preference where needed), the pool checks connections out and in, and the driver's
//! monitor sends its own `hello` every few seconds: the traffic a proxy in front of an
//! application sees. Latency is measured around `find_one`, so it includes the driver.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use mongodb::bson::{doc, Document};
use mongodb::Client;

use super::load::{histogram, sum, LoadPlan, LoadResult};

/// Run `plan` against `target`.
pub(crate) async fn run(target: SocketAddr, plan: LoadPlan) -> anyhow::Result<LoadResult> {
    let uri = format!(
        "mongodb://{target}/?directConnection=true&maxPoolSize={0}&minPoolSize={0}",
        plan.clients
    );
    let client = Client::with_uri_str(&uri)
        .await
        .with_context(|| format!("a driver client for {target}"))?;
    let orders = client.database("app").collection::<Document>("orders");
    let started = Instant::now();
    let measure_from = started + plan.warm_up;
    let end = measure_from + plan.measure;
    let tasks: Vec<_> = (0..plan.clients)
        .map(|index| {
            let orders = orders.clone();
            tokio::spawn(async move {
                let mut latency = histogram();
                let (mut sent, mut measured) = (0u64, 0u64);
                loop {
                    let sent_at = Instant::now();
                    if sent_at >= end {
                        break;
                    }
                    let customer = 10_000 + (index as i64) * 64 + (sent % 64) as i64;
                    let found = orders
                        .find_one(doc! { "status": "A", "customerId": customer })
                        .sort(doc! { "createdAt": -1 })
                        .projection(doc! { "_id": 1, "status": 1, "total": 1 })
                        .await
                        .context("find_one")?;
                    anyhow::ensure!(
                        found.is_some(),
                        "the fake upstream's reply held no document"
                    );
                    sent += 1;
                    if sent_at >= measure_from {
                        measured += 1;
                        let took = u64::try_from(sent_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        latency.saturating_record(took);
                    }
                }
                anyhow::Ok(LoadResult {
                    measured,
                    sent,
                    elapsed: end - measure_from,
                    latency,
                })
            })
        })
        .collect();
    let result = sum(plan, tasks).await;
    client.shutdown().await;
    result
}
