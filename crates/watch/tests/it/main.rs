//! Integration tests of the watch runner against scripted local servers:
//! one binary (see the style guide).

mod run;
mod support;
