//! EC2 instance types as container limits.
//!
//! An instance type names a CPU and memory size; locally it becomes the
//! container's limits. The table holds the common general purpose, burstable,
//! compute and memory optimized sizes with the vCPU count and memory AWS
//! documents for them (`aws ec2 describe-instance-types`: `DefaultVCpus`,
//! `SizeInMiB`). The CPU limit is capped at the host's cores, because engines
//! refuse a limit above what the host has; memory is a limit, not a
//! reservation, so it is applied as given.

use crate::FleetError;

/// One instance type: its name and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceTypeSpec {
    pub name: &'static str,
    pub vcpus: f64,
    pub memory_mib: u64,
}

impl InstanceTypeSpec {
    /// The container's CPU limit on a host with `host_cores` cores:
    /// `min(vcpus, host_cores)`.
    pub fn container_cpus(&self, host_cores: usize) -> f64 {
        self.vcpus.min(host_cores.max(1) as f64)
    }

    /// The container's memory limit in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib * 1024 * 1024
    }
}

const fn spec(name: &'static str, vcpus: f64, memory_mib: u64) -> InstanceTypeSpec {
    InstanceTypeSpec { name, vcpus, memory_mib }
}

/// The known instance types, by family and size.
const INSTANCE_TYPES: &[InstanceTypeSpec] = &[
    // Burstable, previous generation.
    spec("t2.nano", 1.0, 512),
    spec("t2.micro", 1.0, 1024),
    spec("t2.small", 1.0, 2048),
    spec("t2.medium", 2.0, 4096),
    spec("t2.large", 2.0, 8192),
    spec("t2.xlarge", 4.0, 16384),
    spec("t2.2xlarge", 8.0, 32768),
    // Burstable.
    spec("t3.nano", 2.0, 512),
    spec("t3.micro", 2.0, 1024),
    spec("t3.small", 2.0, 2048),
    spec("t3.medium", 2.0, 4096),
    spec("t3.large", 2.0, 8192),
    spec("t3.xlarge", 4.0, 16384),
    spec("t3.2xlarge", 8.0, 32768),
    // General purpose, first generation (the lab's launch configuration uses m1.large).
    spec("m1.small", 1.0, 1740),
    spec("m1.medium", 1.0, 3840),
    spec("m1.large", 2.0, 7680),
    spec("m1.xlarge", 4.0, 15360),
    // General purpose.
    spec("m4.large", 2.0, 8192),
    spec("m4.xlarge", 4.0, 16384),
    spec("m4.2xlarge", 8.0, 32768),
    spec("m5.large", 2.0, 8192),
    spec("m5.xlarge", 4.0, 16384),
    spec("m5.2xlarge", 8.0, 32768),
    spec("m6i.large", 2.0, 8192),
    spec("m6i.xlarge", 4.0, 16384),
    spec("m6i.2xlarge", 8.0, 32768),
    // Compute optimized.
    spec("c5.large", 2.0, 4096),
    spec("c5.xlarge", 4.0, 8192),
    spec("c6i.large", 2.0, 4096),
    spec("c6i.xlarge", 4.0, 8192),
    // Memory optimized.
    spec("r5.large", 2.0, 16384),
    spec("r5.xlarge", 4.0, 32768),
];

/// Every known instance type, in the table's order.
pub fn instance_types() -> &'static [InstanceTypeSpec] {
    INSTANCE_TYPES
}

/// The instance type called `name`; an unknown name is an error listing the
/// known ones.
pub fn instance_type(name: &str) -> Result<InstanceTypeSpec, FleetError> {
    INSTANCE_TYPES.iter().find(|spec| spec.name == name).copied().ok_or_else(|| {
        FleetError::UnknownInstanceType {
            name: name.to_string(),
            known: INSTANCE_TYPES.iter().map(|spec| spec.name).collect::<Vec<_>>().join(", "),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_aws_sizes() {
        let sizes: Vec<(&str, f64, u64)> =
            ["t2.micro", "t3.nano", "m1.large", "m5.large", "c5.xlarge", "r5.large"]
                .into_iter()
                .map(|name| {
                    let spec = instance_type(name).expect("known");
                    (spec.name, spec.vcpus, spec.memory_mib)
                })
                .collect();
        assert_eq!(
            sizes,
            [
                ("t2.micro", 1.0, 1024),
                ("t3.nano", 2.0, 512),
                ("m1.large", 2.0, 7680),
                ("m5.large", 2.0, 8192),
                ("c5.xlarge", 4.0, 8192),
                ("r5.large", 2.0, 16384),
            ]
        );
        let mut names: Vec<&str> = instance_types().iter().map(|spec| spec.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), instance_types().len(), "names are unique");
    }

    #[test]
    fn cpus_are_capped_at_the_host_cores_and_memory_is_given() {
        let large = instance_type("m5.2xlarge").expect("known");
        assert_eq!(large.container_cpus(2), 2.0);
        assert_eq!(large.container_cpus(16), 8.0);
        assert_eq!(large.container_cpus(0), 1.0, "a host has at least one core");
        assert_eq!(instance_type("t2.nano").expect("known").memory_bytes(), 512 << 20);
    }

    #[test]
    fn an_unknown_type_names_the_known_ones() {
        let error = instance_type("m1.huge").expect_err("unknown");
        let message = error.to_string();
        assert!(
            message.starts_with("unknown instance type m1.huge; known types: t2.nano, t2.micro"),
            "{message}"
        );
        assert!(message.contains("m1.large") && message.ends_with("r5.xlarge"), "{message}");
    }
}
