//! Integration tests of the load balancer: one binary (see the style guide).

mod health_table;
