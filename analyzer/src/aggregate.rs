//! Aggregation: shapes → statistics, in bounded memory.
