//! A TPC-C-like OLTP application: the schema of the TPC-C specification (clause 1.3, composite
//! primary keys) and the statements of its five transactions as the specification's sample
//! programs write them (clause 2 and appendix A): comma joins with unqualified columns
//! (`FROM customer, warehouse WHERE w_id = $1 AND c_w_id = w_id ...`), primary-key lookups
//! whose columns come in another order than the key's, a customer found by last name.
//!
//! Scaled down (one warehouse, 1,000 customers per district) so it loads in seconds; amounts
//! are `double precision` rather than `numeric`, which the Rust driver does not bind.
//!
//! ## Layout
//! - [`SCHEMA`]: tables, primary keys and rows.
//! - [`STATEMENTS`]: the transactions' statements and their parameters.
//! - [`run`]: every statement `rounds` times.
#![allow(unreachable_pub)]

use indextap_tests::postgres::{param_refs, Params};
use tokio_postgres::Client;

/// The TPC-C tables with their primary keys (and no other index), and their rows.
pub const SCHEMA: &str = r#"
CREATE TABLE warehouse (w_id int NOT NULL, w_name varchar(10), w_street_1 varchar(20),
    w_city varchar(20), w_state char(2), w_zip char(9), w_tax double precision, w_ytd double precision,
    PRIMARY KEY (w_id));
CREATE TABLE district (d_id int NOT NULL, d_w_id int NOT NULL, d_name varchar(10),
    d_tax double precision, d_ytd double precision, d_next_o_id int, PRIMARY KEY (d_w_id, d_id));
CREATE TABLE customer (c_id int NOT NULL, c_d_id int NOT NULL, c_w_id int NOT NULL,
    c_first varchar(16), c_middle char(2), c_last varchar(16), c_credit char(2),
    c_discount double precision, c_balance double precision, c_ytd_payment double precision,
    c_payment_cnt int, c_delivery_cnt int, c_data varchar(500),
    PRIMARY KEY (c_w_id, c_d_id, c_id));
CREATE TABLE history (h_c_id int, h_c_d_id int, h_c_w_id int, h_d_id int, h_w_id int,
    h_date timestamp, h_amount double precision, h_data varchar(24));
CREATE TABLE orders (o_id int NOT NULL, o_d_id int NOT NULL, o_w_id int NOT NULL, o_c_id int,
    o_entry_d timestamp, o_carrier_id int, o_ol_cnt int, o_all_local int,
    PRIMARY KEY (o_w_id, o_d_id, o_id));
CREATE TABLE new_order (no_o_id int NOT NULL, no_d_id int NOT NULL, no_w_id int NOT NULL,
    PRIMARY KEY (no_w_id, no_d_id, no_o_id));
CREATE TABLE order_line (ol_o_id int NOT NULL, ol_d_id int NOT NULL, ol_w_id int NOT NULL,
    ol_number int NOT NULL, ol_i_id int, ol_supply_w_id int, ol_delivery_d timestamp,
    ol_quantity int, ol_amount double precision, ol_dist_info char(24),
    PRIMARY KEY (ol_w_id, ol_d_id, ol_o_id, ol_number));
CREATE TABLE item (i_id int NOT NULL, i_im_id int, i_name varchar(24), i_price double precision,
    i_data varchar(50), PRIMARY KEY (i_id));
CREATE TABLE stock (s_i_id int NOT NULL, s_w_id int NOT NULL, s_quantity int,
    s_dist_01 char(24), s_ytd int, s_order_cnt int, s_remote_cnt int,
    s_data varchar(50), PRIMARY KEY (s_w_id, s_i_id));

INSERT INTO warehouse SELECT 1, 'w1', 'street', 'city', 'ST', '123456789', 0.1, 300000;
INSERT INTO district SELECT d, 1, 'd' || d, 0.05, 30000, 3001 FROM generate_series(1, 10) d;
INSERT INTO customer
SELECT c, d, 1, 'first' || (c % 97), 'OE',
       (ARRAY['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[c % 10 + 1]
         || (ARRAY['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[(c / 10) % 10 + 1]
         || (ARRAY['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[(c / 100) % 10 + 1],
       'GC', 0.1, -10, 10, 1, 0, repeat('x', 300)
  FROM generate_series(1, 10) d, generate_series(1, 1000) c;
INSERT INTO item SELECT i, i, 'item' || i, 10 + i % 90, repeat('y', 40)
  FROM generate_series(1, 5000) i;
INSERT INTO stock SELECT i, 1, 10 + i % 90, repeat('z', 24), 0, 0, 0, repeat('s', 40)
  FROM generate_series(1, 5000) i;
INSERT INTO orders SELECT o, d, 1, (o * 7) % 1000 + 1, timestamp '2024-01-01', o % 10, 5, 1
  FROM generate_series(1, 10) d, generate_series(1, 3000) o;
INSERT INTO new_order SELECT o, d, 1 FROM generate_series(1, 10) d, generate_series(2101, 3000) o;
INSERT INTO order_line SELECT o, d, 1, l, (o * l) % 5000 + 1, 1, NULL, 5, 9.99, repeat('i', 24)
  FROM generate_series(1, 10) d, generate_series(1, 3000) o, generate_series(1, 5) l;
ANALYZE;
"#;

/// Parameters of one execution, from the round number.
type Statement = fn(i32) -> Params;

fn last_name(n: i32) -> String {
    const SYLLABLES: [&str; 10] = [
        "BAR", "OUGHT", "ABLE", "PRI", "PRES", "ESE", "ANTI", "CALLY", "ATION", "EING",
    ];
    let pick = |k: i32| SYLLABLES[usize::try_from(k % 10).unwrap_or(0)];
    format!("{}{}{}", pick(n), pick(n / 10), pick(n / 100))
}

/// The five transactions' statements, as the specification's sample programs write them.
pub const STATEMENTS: [(&str, Statement); 21] = [
    // New-Order.
    (
        "SELECT c_discount, c_last, c_credit, w_tax FROM customer, warehouse WHERE w_id = $1 AND c_w_id = w_id AND c_d_id = $2 AND c_id = $3",
        |n| vec![Box::new(1), Box::new(n % 10 + 1), Box::new(n * 31 % 1000 + 1)],
    ),
    (
        "SELECT d_next_o_id, d_tax FROM district WHERE d_id = $1 AND d_w_id = $2",
        |n| vec![Box::new(n % 10 + 1), Box::new(1)],
    ),
    (
        "UPDATE district SET d_next_o_id = d_next_o_id + 1 WHERE d_id = $1 AND d_w_id = $2",
        |n| vec![Box::new(n % 10 + 1), Box::new(1)],
    ),
    (
        "SELECT i_price, i_name, i_data FROM item WHERE i_id = $1",
        |n| vec![Box::new(n * 13 % 5000 + 1)],
    ),
    (
        "SELECT s_quantity, s_data, s_dist_01 FROM stock WHERE s_i_id = $1 AND s_w_id = $2",
        |n| vec![Box::new(n * 13 % 5000 + 1), Box::new(1)],
    ),
    (
        "UPDATE stock SET s_quantity = $1, s_ytd = s_ytd + $2, s_order_cnt = s_order_cnt + 1 WHERE s_i_id = $3 AND s_w_id = $4",
        |n| vec![Box::new(50), Box::new(5), Box::new(n * 13 % 5000 + 1), Box::new(1)],
    ),
    // Payment.
    (
        "UPDATE warehouse SET w_ytd = w_ytd + $1 WHERE w_id = $2",
        |_| vec![Box::new(10.0_f64), Box::new(1)],
    ),
    (
        "SELECT w_street_1, w_city, w_state, w_zip, w_name FROM warehouse WHERE w_id = $1",
        |_| vec![Box::new(1)],
    ),
    (
        "UPDATE district SET d_ytd = d_ytd + $1 WHERE d_w_id = $2 AND d_id = $3",
        |n| vec![Box::new(10.0_f64), Box::new(1), Box::new(n % 10 + 1)],
    ),
    (
        "SELECT count(c_id) FROM customer WHERE c_last = $1 AND c_d_id = $2 AND c_w_id = $3",
        |n| vec![Box::new(last_name(n * 7 % 1000)), Box::new(n % 10 + 1), Box::new(1)],
    ),
    (
        "SELECT c_first, c_middle, c_id, c_balance FROM customer WHERE c_w_id = $1 AND c_d_id = $2 AND c_last = $3 ORDER BY c_first",
        |n| vec![Box::new(1), Box::new(n % 10 + 1), Box::new(last_name(n * 7 % 1000))],
    ),
    (
        "SELECT c_first, c_middle, c_last, c_credit, c_balance FROM customer WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
        |n| vec![Box::new(1), Box::new(n % 10 + 1), Box::new(n * 31 % 1000 + 1)],
    ),
    (
        "UPDATE customer SET c_balance = c_balance - $1, c_ytd_payment = c_ytd_payment + $1 WHERE c_w_id = $2 AND c_d_id = $3 AND c_id = $4",
        |n| vec![Box::new(10.0_f64), Box::new(1), Box::new(n % 10 + 1), Box::new(n * 31 % 1000 + 1)],
    ),
    // Order-Status.
    (
        "SELECT o_id, o_carrier_id, o_entry_d FROM orders WHERE o_w_id = $1 AND o_d_id = $2 AND o_c_id = $3 ORDER BY o_id DESC",
        |n| vec![Box::new(1), Box::new(n % 10 + 1), Box::new(n * 31 % 1000 + 1)],
    ),
    (
        "SELECT ol_i_id, ol_supply_w_id, ol_quantity, ol_amount, ol_delivery_d FROM order_line WHERE ol_o_id = $1 AND ol_d_id = $2 AND ol_w_id = $3",
        |n| vec![Box::new(n * 17 % 3000 + 1), Box::new(n % 10 + 1), Box::new(1)],
    ),
    // Delivery.
    (
        "SELECT no_o_id FROM new_order WHERE no_d_id = $1 AND no_w_id = $2 ORDER BY no_o_id ASC LIMIT 1",
        |n| vec![Box::new(n % 10 + 1), Box::new(1)],
    ),
    (
        "SELECT o_c_id FROM orders WHERE o_id = $1 AND o_d_id = $2 AND o_w_id = $3",
        |n| vec![Box::new(n * 17 % 3000 + 1), Box::new(n % 10 + 1), Box::new(1)],
    ),
    (
        "UPDATE order_line SET ol_delivery_d = now() WHERE ol_o_id = $1 AND ol_d_id = $2 AND ol_w_id = $3",
        |n| vec![Box::new(n * 17 % 3000 + 1), Box::new(n % 10 + 1), Box::new(1)],
    ),
    (
        "SELECT SUM(ol_amount) FROM order_line WHERE ol_o_id = $1 AND ol_d_id = $2 AND ol_w_id = $3",
        |n| vec![Box::new(n * 17 % 3000 + 1), Box::new(n % 10 + 1), Box::new(1)],
    ),
    // Stock-Level.
    (
        "SELECT d_next_o_id FROM district WHERE d_w_id = $1 AND d_id = $2",
        |n| vec![Box::new(1), Box::new(n % 10 + 1)],
    ),
    (
        "SELECT COUNT(DISTINCT (s_i_id)) FROM order_line, stock WHERE ol_w_id = $1 AND ol_d_id = $2 AND ol_o_id < $3 AND ol_o_id >= $4 AND s_w_id = $5 AND s_i_id = ol_i_id AND s_quantity < $6",
        |n| vec![Box::new(1), Box::new(n % 10 + 1), Box::new(3001), Box::new(2981), Box::new(1), Box::new(15)],
    ),
];

/// Runs every statement `rounds` times; the number of executions.
pub async fn run(client: &Client, rounds: i32) -> u64 {
    let mut executions = 0;
    for n in 0..rounds {
        for (sql, params) in STATEMENTS {
            client
                .execute(sql, &param_refs(&params(n)))
                .await
                .unwrap_or_else(|err| panic!("{sql}: {err:?}"));
            executions += 1;
        }
    }
    executions
}
