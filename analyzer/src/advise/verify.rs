//! Verification with planner costs. (Being written.)
