//! Integration tests of the load balancer: one binary (see the style guide).

mod checker_virtual_time;
mod health_table;
mod ports;
mod proxy_http;
mod support;
