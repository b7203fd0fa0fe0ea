//! Tests of the CloudFormation frontend.
