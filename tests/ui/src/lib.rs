//! Holds no code: the UI cases are in `pass/` and `fail/`, run by `tests/ui.rs`.
