//! Normalisation throughput on one thread: how many commands a second the analyzer turns
//! into shapes, with no sockets involved.
//!
//! Run with `cargo bench -p indextap-analyzer --bench normalise` (the bench profile is a
//! release build). Every case builds its inputs once, then times a fixed number of calls
//! after a short warm-up, so the figures are comparable from run to run.
//!
//! ## Cases
//! - `mongo lower`: [`shape::mongo::lower`] over a realistic driver mix (find with
//!   filter/sort/limit/projection, aggregate with `$match`/`$sort`/`$lookup`, update with a
//!   kind 1 `updates` sequence, insert of 10 documents, getMore, count), session fields and
//!   all, as the proxy's decoder hands them over.
//! - `mongo lower + record`: the same, plus [`Aggregator::record`]: the whole analysis path.
//! - `sql cached (hit)`: [`SqlCache::lower_shared`] hits over ~50 distinct statements
//!   repeated as prepared statements (extended protocol): a hash and a lookup.
//! - `sql cached (shape::lower)`: the same hits through [`shape::lower`], which the proxy's
//!   pipeline calls and which copies the cached lowering out.
//! - `sql cached + record`: the same, plus [`Aggregator::record`].
//! - `sql cold`: a unique text on every call (a literal varies, and the database, so that
//!   the masked key misses too), so every call tokenizes twice (once for the masked key),
//!   parses, lowers and inserts into the cache.
//! - `sql new literals (masked hit)`: 10,000 simple-protocol texts (mostly pgbench's
//!   `SELECT abalance FROM pgbench_accounts WHERE aid = N;`, plus ORM statements), each with
//!   its own values, after one text of each template was lowered: every call misses the
//!   exact key and hits the quick key (one pass over the bytes and two lookups) or, for the
//!   templates whose enum constants the key keeps, the masked key (a tokenization and three
//!   lookups). A simple-protocol text is never stored under its exact key, so walking the
//!   texts again cannot hit it.
//! - `sql pgbench literals (quick hit)`: pgbench's statement alone, each text with its own
//!   `aid`: one pass over the bytes and two lookups, never the tokenizer.
//!
//! ## Layout
//! - this file: the timing loop, the table, the cases.
//! - `inputs`: the MongoDB mix and the SQL statements.
//! - `machine` (`benches/shared/machine.rs`, shared with the proxy's bench): the CPU and the
//!   load.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use indextap_analyzer::aggregate::Aggregator;
use indextap_analyzer::command::{
    MongoCommand, Observation, Outcome, Request, SqlCommand, SqlProtocol,
};
use indextap_analyzer::shape::{self, sql::SqlCache};

use inputs::{literal_commands, mongo_mix, pgbench_commands, sql_command, sql_statements};

#[path = "normalise/inputs.rs"]
mod inputs;
#[path = "shared/machine.rs"]
mod machine;

/// Iterations of the timed loops over the MongoDB mix (each covers all six commands).
const MONGO_ROUNDS: usize = 400_000;
/// Iterations of the timed loops over the cached SQL mix (each covers every statement).
const SQL_CACHED_ROUNDS: usize = 40_000;
/// Unique statements lowered by the cold case.
const SQL_COLD_CALLS: usize = 60_000;
/// Texts with their own values walked by the masked-hit case, and how many times.
const SQL_LITERAL_TEXTS: usize = 10_000;
const SQL_LITERAL_ROUNDS: usize = 30;
/// The MongoDB target this bench exists to show, in commands per second on one core.
const MONGO_TARGET_PER_SEC: f64 = 500_000.0;

fn main() {
    println!("indextap-analyzer normalisation bench (one thread, release build)");
    println!(
        "machine: {} cores available ({}); nothing pinned",
        machine::cores(),
        machine::cpu_model()
    );
    println!("load average at start: {}", machine::load_average());
    println!();

    let mut rows = Vec::new();
    let mongo = mongo_mix();
    let mongo_lower = measure("mongo lower", mongo.len(), MONGO_ROUNDS, || {
        for command in &mongo {
            black_box(shape::mongo::lower(black_box(command)));
        }
    });
    rows.push(mongo_lower);

    let observations: Vec<Observation> = mongo.iter().cloned().map(observe_mongo).collect();
    let aggregator = Aggregator::new(10_000);
    rows.push(measure(
        "mongo lower + record",
        mongo.len(),
        MONGO_ROUNDS,
        || {
            for observation in &observations {
                if let Request::Mongo(command) = &observation.request {
                    aggregator.record(observation, shape::mongo::lower(command));
                }
            }
        },
    ));

    let statements = sql_statements();
    let cached: Vec<SqlCommand> = statements
        .iter()
        .enumerate()
        .map(|(index, template)| SqlCommand {
            // Prepared statements: the ones that come back verbatim, found by the exact key.
            protocol: SqlProtocol::Extended,
            ..sql_command(template, index as u64)
        })
        .collect();
    let cache = SqlCache::new(4096);
    rows.push(lower_each(
        "sql cached (hit)",
        &cache,
        &cached,
        SQL_CACHED_ROUNDS,
    ));

    // What the pipeline calls: the same hit, with the cached lowering copied out.
    let requests: Vec<Request> = cached.iter().cloned().map(Request::Sql).collect();
    rows.push(measure(
        "sql cached (shape::lower)",
        cached.len(),
        SQL_CACHED_ROUNDS,
        || {
            for request in &requests {
                black_box(shape::lower(black_box(request), &cache));
            }
        },
    ));

    let sql_observations: Vec<Observation> = cached
        .iter()
        .cloned()
        .map(|command| observation(Request::Sql(command)))
        .collect();
    let sql_aggregator = Aggregator::new(10_000);
    rows.push(measure(
        "sql cached + record",
        sql_observations.len(),
        SQL_CACHED_ROUNDS,
        || {
            for observation in &sql_observations {
                let lowering = shape::lower(&observation.request, &cache);
                sql_aggregator.record(observation, lowering);
            }
        },
    ));

    // Unique texts, built before timing so formatting is not measured. One round walks
    // them all once; the warm-up uses its own texts so every timed call misses. A new value
    // alone would be a masked hit, so each command also names its own database, which
    // seeds both keys.
    let cold_cache = SqlCache::new(4096);
    let cold_texts = |from: u64| -> Vec<SqlCommand> {
        (0..SQL_COLD_CALLS as u64)
            .map(|n| {
                let template = &statements[(n as usize) % statements.len()];
                let n = 1_000_000 + from + n;
                SqlCommand {
                    database: format!("app{n}").into(),
                    ..sql_command(template, n)
                }
            })
            .collect()
    };
    let warm = cold_texts(SQL_COLD_CALLS as u64 * 10);
    for command in warm.iter().take(2_000) {
        black_box(cold_cache.lower_shared(command));
    }
    let cold = cold_texts(0);
    let misses_before = cold_cache.misses();
    let started = Instant::now();
    for command in &cold {
        black_box(cold_cache.lower_shared(black_box(command)));
    }
    let elapsed = started.elapsed();
    let misses = cold_cache.misses() - misses_before;
    assert_eq!(misses as usize, cold.len(), "every cold call must parse");
    rows.push(Row {
        name: "sql cold (parse every call)",
        calls: cold.len() as u64,
        elapsed,
    });

    // New values on every call: the masked key answers. The warm-up lowers each template
    // once (the first texts), the timed rounds must then never lower again.
    let literal_cache = SqlCache::new(4096);
    let literal = literal_commands(SQL_LITERAL_TEXTS);
    let literal_misses = literal_cache.misses();
    let literal_masked = literal_cache.masked_hits();
    rows.push(lower_each(
        "sql new literals (masked hit)",
        &literal_cache,
        &literal,
        SQL_LITERAL_ROUNDS,
    ));
    let templates_lowered = literal_cache.misses() - literal_misses;
    let literal_calls = (literal.len() * (SQL_LITERAL_ROUNDS + SQL_LITERAL_ROUNDS / 10)) as u64;
    assert_eq!(
        literal_cache.masked_hits() - literal_masked + templates_lowered,
        literal_calls,
        "every call after a template's first must be a masked hit"
    );
    assert_eq!(literal_cache.hits(), literal_cache.masked_hits());

    // pgbench -M simple alone: every text a quick hit, no tokenizer.
    let pgbench_cache = SqlCache::new(4096);
    let pgbench = pgbench_commands(SQL_LITERAL_TEXTS);
    rows.push(lower_each(
        "sql pgbench literals (quick hit)",
        &pgbench_cache,
        &pgbench,
        SQL_LITERAL_ROUNDS,
    ));
    assert_eq!(
        pgbench_cache.quick_hits() + pgbench_cache.misses(),
        pgbench_cache.hits() + pgbench_cache.misses(),
        "every pgbench text after the first must be a quick hit"
    );

    print_table(&rows);
    println!();
    println!(
        "cache check: sql cached hits {} / misses {}; cold misses {}",
        cache.hits(),
        cache.misses(),
        misses
    );
    println!(
        "masked case: templates lowered {}, masked hits {} (quick {}), exact hits {}",
        templates_lowered,
        literal_cache.masked_hits(),
        literal_cache.quick_hits(),
        literal_cache.hits() - literal_cache.masked_hits()
    );
    println!(
        "shapes tracked: mongo {} · sql {}",
        aggregator.shapes_tracked(),
        sql_aggregator.shapes_tracked()
    );
    let mongo_rate = rows[0].per_sec();
    println!(
        "target: MongoDB normalisation >= {:.0}k commands/s on one core: {} ({:.0}k/s)",
        MONGO_TARGET_PER_SEC / 1000.0,
        if mongo_rate >= MONGO_TARGET_PER_SEC {
            "MET"
        } else {
            "MISSED"
        },
        mongo_rate / 1000.0
    );
}

/// One timed case.
struct Row {
    name: &'static str,
    calls: u64,
    elapsed: Duration,
}

impl Row {
    fn per_sec(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    fn ns_per_call(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.calls as f64
    }
}

/// Warm up with a tenth of the rounds, then time `rounds` calls of `round`, each of which
/// handles `per_round` commands.
fn measure(name: &'static str, per_round: usize, rounds: usize, mut round: impl FnMut()) -> Row {
    for _ in 0..rounds / 10 {
        round();
    }
    let started = Instant::now();
    for _ in 0..rounds {
        round();
    }
    Row {
        name,
        calls: (per_round * rounds) as u64,
        elapsed: started.elapsed(),
    }
}

/// `rounds` rounds of looking every command up in `cache` (lowering it on a miss).
fn lower_each(name: &'static str, cache: &SqlCache, commands: &[SqlCommand], rounds: usize) -> Row {
    measure(name, commands.len(), rounds, || {
        for command in commands {
            black_box(cache.lower_shared(black_box(command)));
        }
    })
}

fn print_table(rows: &[Row]) {
    println!(
        "| {:<32} | {:>11} | {:>8} | {:>14} | {:>10} |",
        "case", "commands", "time (s)", "commands/s", "ns/command"
    );
    println!(
        "|{:-<34}|{:->13}|{:->10}|{:->16}|{:->12}|",
        "", "", "", "", ""
    );
    for row in rows {
        println!(
            "| {:<32} | {:>11} | {:>8.2} | {:>14} | {:>10.0} |",
            row.name,
            thousands(row.calls as f64),
            row.elapsed.as_secs_f64(),
            thousands(row.per_sec()),
            row.ns_per_call()
        );
    }
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn observation(request: Request) -> Observation {
    Observation {
        request,
        outcome: Outcome {
            latency: Duration::from_micros(350),
            returned: 1,
            ..Outcome::default()
        },
        at: SystemTime::now(),
    }
}

fn observe_mongo(command: MongoCommand) -> Observation {
    observation(Request::Mongo(command))
}
