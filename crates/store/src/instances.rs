//! Fleet instances: one row per instance an Auto Scaling group launched.
