//! A fleet of sidecars: each sees part of the traffic; `indextap merge` combines their
//! snapshots into one advice whose counts are the sums, and merging is commutative and
//! associative, through the CLI.

use std::collections::BTreeMap;
use std::path::Path;

use indextap_analyzer::snapshot::Snapshot;
use indextap_tests::{IndextapProcess, SecantusDb, SecantusOptions};

use super::{loopback, mongo_finds, mongo_proxy, run_cli_ok, wait_for_counts};

/// Runs `recommend --from` on `snapshot` and checks that the one index of each collection
/// serves the `(orders, users, items)` finds.
#[track_caller]
fn assert_advice_serves(snapshot: &Path, (orders, users, items): (u64, u64, u64)) {
    let advice = run_cli_ok(&["recommend", "--from", &path_arg(snapshot)]);
    let advice: serde_json::Value = serde_json::from_str(&advice).expect("JSON advice");
    let expected = [("orders", orders), ("users", users), ("items", items)]
        .map(|(collection, count)| (format!("{collection}.sku_1_at_-1"), count));
    assert_eq!(served_counts(&advice), BTreeMap::from(expected), "{advice}");
}

/// A recommendation's index name → executions of the shapes it serves.
fn served_counts(advice: &serde_json::Value) -> BTreeMap<String, u64> {
    advice["recommendations"]
        .as_array()
        .unwrap_or_else(|| panic!("no recommendations in {advice}"))
        .iter()
        .map(|recommendation| {
            let served = recommendation["serves"]
                .as_array()
                .map(|serves| serves.iter().filter_map(|s| s["count"].as_u64()).sum())
                .unwrap_or_default();
            (
                format!(
                    "{}.{}",
                    recommendation["collection"].as_str().unwrap_or_default(),
                    recommendation["name"].as_str().unwrap_or_default()
                ),
                served,
            )
        })
        .collect()
}

fn admin_url(proxy: &IndextapProcess) -> String {
    format!("http://{}", proxy.admin_addr())
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// `indextap merge inputs... -o out`; the file's text.
fn merge(inputs: &[&str], out: &Path) -> String {
    let mut args = vec!["merge"];
    args.extend_from_slice(inputs);
    let out_arg = path_arg(out);
    args.extend(["-o", &out_arg]);
    run_cli_ok(&args);
    std::fs::read_to_string(out).expect("merged file")
}

#[tokio::test]
async fn snapshots_of_several_proxies_merge_into_one_advice() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let work: [&[(&str, u64)]; 3] = [
        &[("orders", 4), ("users", 2)],
        &[("orders", 6), ("items", 3)],
        &[("users", 5), ("items", 1)],
    ];
    let mut proxies = Vec::new();
    for part in work {
        let listen = loopback();
        let proxy = mongo_proxy(server.addr(), listen, &[]);
        mongo_finds(&server.uri_via(listen), part).await;
        let expected: Vec<(&str, &str, u64)> = part
            .iter()
            .map(|(collection, times)| (*collection, "find", *times))
            .collect();
        wait_for_counts(&proxy, &expected);
        proxies.push(proxy);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str| dir.path().join(name);

    // Two live proxies, merged by URL, advised from the file.
    let merged_path = file("merged.json");
    merge(
        &[&admin_url(&proxies[0]), &admin_url(&proxies[1])],
        &merged_path,
    );
    assert_advice_serves(&merged_path, (10, 2, 3));

    // Each proxy's snapshot as a file (a merge of one is the snapshot itself).
    let [a, b, c] = ["a.json", "b.json", "c.json"].map(file);
    for (proxy, path) in proxies.iter().zip([&a, &b, &c]) {
        merge(&[&admin_url(proxy)], path);
    }
    let (a, b, c) = (path_arg(&a), path_arg(&b), path_arg(&c));

    let ab = merge(&[&a, &b], &file("ab.json"));
    let ba = merge(&[&b, &a], &file("ba.json"));
    assert_eq!(ab, ba, "merging is commutative");
    let ab_then_c = merge(&[&path_arg(&file("ab.json")), &c], &file("ab_c.json"));
    merge(&[&b, &c], &file("bc.json"));
    let a_then_bc = merge(&[&a, &path_arg(&file("bc.json"))], &file("a_bc.json"));
    assert_eq!(ab_then_c, a_then_bc, "merging is associative");

    // The sums, shape by shape.
    let parse = |text: &str| Snapshot::from_json(text).expect("a snapshot");
    let parts: Vec<Snapshot> = [&a, &b, &c]
        .iter()
        .map(|path| parse(&std::fs::read_to_string(path).expect("read")))
        .collect();
    let all = parse(&ab_then_c);
    let ids: Vec<_> = all.shapes.keys().copied().collect();
    assert_eq!(ids.len(), 3, "orders, users, items: one shape each");
    for id in ids {
        let sum: u64 = parts
            .iter()
            .filter_map(|part| part.shapes.get(&id))
            .map(|record| record.count)
            .sum();
        assert_eq!(all.shapes[&id].count, sum, "shape {id}");
    }
    assert_advice_serves(&file("ab_c.json"), (10, 7, 4));
}
