//! The shipped lab stacks on real Podman: base and application stacks
//! created from `templates/`, the page and `/details.php` served through
//! autopatch's load balancer by both instances, exports guarding deletion,
//! the VPC's network labelled with its instances' ownership labels, and
//! deletes that leave no container behind.
//!
//! The application image is the shipped `webapp` recipe baked once by the
//! real image pipeline and kept as `localhost/autopatch-test/webapp:bookworm-<hash>` (crates/testkit).

mod support;

use autopatch_engine::Engine;
use autopatch_stacks::api::*;
use support::{Fixture, curl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_stacks_serve_the_page_from_both_instances_and_delete_cleanly() {
    let fixture = Fixture::new().await;
    let service = &fixture.service;

    let base = fixture.create("pattern3-base", "pattern3-base.yml", &[]).await;
    assert_eq!(base.stack_status, "CREATE_COMPLETE", "{base:?}");
    let exports = service.list_exports(ListExportsInput {}).unwrap().exports;
    let names: Vec<&str> = exports.iter().map(|export| export.name.as_str()).collect();
    for name in
        ["pattern3-base-VpcId", "pattern3-base-PrivateSubnet1", "pattern3-base-PrivateSubnet2"]
    {
        assert!(names.contains(&name), "export {name} missing from {names:?}");
    }

    let app = fixture
        .create(
            "pattern3-app",
            "pattern3-app.yml",
            &[("BaselineVpcStack", "pattern3-base"), ("AmazonMachineImage", support::WEBAPP)],
        )
        .await;
    assert_eq!(app.stack_status, "CREATE_COMPLETE", "{app:?}");
    let dns = app
        .outputs
        .iter()
        .find(|output| output.output_key == "OutputPattern3ALBDNSName")
        .expect("the DNS name output")
        .output_value
        .clone();
    assert!(dns.starts_with("127.0.0.1:"), "the load balancer listens on loopback: {dns}");

    // The base stack's exports are in use: it cannot be deleted.
    let refused = service
        .delete_stack(DeleteStackInput { stack_name: "pattern3-base".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert!(refused.message.contains("is in use by pattern3-app"), "{refused}");

    // Both instances are healthy targets and both answer through the proxy.
    let groups = service.describe_auto_scaling_groups(Default::default()).unwrap();
    let group = &groups.auto_scaling_groups[0];
    assert_eq!(group.instances.len(), 2, "{group:?}");
    let zones: std::collections::BTreeSet<&str> =
        group.instances.iter().map(|instance| instance.availability_zone.as_str()).collect();
    assert_eq!(zones.len(), 2, "instances spread over the two private subnets' zones: {group:?}");
    let target_group = &group.target_group_arns[0];
    fixture.wait_healthy(target_group, 2).await;
    // Round robin over two targets: six of each page reach both instances.
    for _ in 0..6 {
        let page = curl(&format!("http://{dns}/"));
        assert!(page.contains("Welcome to Re:Invent 2020 The Well Architected Way"), "{page}");
    }
    for _ in 0..6 {
        let details = curl(&format!("http://{dns}/details.php"));
        assert!(
            details.contains(&format!("Amazon Image Id:</b> {}", support::WEBAPP)),
            "{details}"
        );
        assert!(details.contains("apache2 -  "), "the package list: {details}");
    }
    for instance in &group.instances {
        let log = fixture.exec(&instance.instance_id, "cat /var/log/apache2/access.log").await;
        // Requests through the proxy come from the network's gateway; the
        // user data's own check comes from 127.0.0.1 inside the instance.
        let proxied: Vec<&str> = log
            .lines()
            .filter(|line| !line.starts_with("127.0.0.1 ") && line.contains("curl/"))
            .collect();
        for page in ["GET / ", "GET /details.php "] {
            let served = proxied.iter().filter(|line| line.contains(page)).count();
            assert_eq!(
                served, 3,
                "instance {} served {served} of the 6 {page} requests: {log}",
                instance.instance_id
            );
        }
    }

    // The VPC's network carries the ownership labels its instances carry.
    let resources = service
        .describe_stack_resources(DescribeStackResourcesInput {
            stack_name: "pattern3-base".into(),
        })
        .unwrap()
        .stack_resources;
    let vpc = resources
        .iter()
        .find(|resource| resource.resource_type == "AWS::EC2::VPC")
        .and_then(|resource| resource.physical_resource_id.clone())
        .expect("the VPC");
    let network = network_labels(&format!("autopatch-{vpc}"));
    let label = [("autopatch.instance".to_owned(), group.instances[0].instance_id.clone())];
    let instance = fixture.engine.container_list(&label).await.unwrap().remove(0);
    assert_eq!(network.get("autopatch.fleet"), instance.labels.get("autopatch.fleet"));
    assert_eq!(network.get("autopatch.stack"), Some(&base.stack_id));
    assert_eq!(network.get("autopatch.role").map(String::as_str), Some("vpc"));
    assert_eq!(network.get("autopatch.vpc"), Some(&vpc));

    fixture.delete("pattern3-app").await;
    assert!(fixture.instance_containers().await.is_empty(), "instances left after delete");
    fixture.delete("pattern3-base").await;
    let stacks = service.list_stacks(Default::default()).unwrap().stack_summaries;
    assert!(stacks.iter().all(|stack| stack.stack_status == "DELETE_COMPLETE"), "{stacks:?}");
}

/// A network's labels, as `podman network inspect` (an external oracle) shows them.
fn network_labels(name: &str) -> std::collections::BTreeMap<String, String> {
    let output = std::process::Command::new("podman")
        .args(["network", "inspect", "--format", "{{json .Labels}}", name])
        .output()
        .expect("run podman");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the labels as JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_that_never_signal_roll_the_stack_back_and_leave_nothing() {
    let fixture = Fixture::new().await;
    let template = one_instance_group(&["#!/bin/sh", "exit 3"], "PT3S");
    let stack = fixture.create_from_body("silent", &template).await;
    assert_eq!(stack.stack_status, "ROLLBACK_COMPLETE", "{stack:?}");
    let events = fixture
        .service
        .describe_stack_events(DescribeStackEventsInput { stack_name: stack.stack_id.clone() })
        .unwrap();
    let failed = events
        .stack_events
        .iter()
        .find(|event| {
            event.logical_resource_id == "Group" && event.resource_status == "CREATE_FAILED"
        })
        .expect("the group's CREATE_FAILED event");
    assert!(
        failed
            .resource_status_reason
            .as_deref()
            .unwrap_or("")
            .contains("Failed to receive 1 resource signal"),
        "{failed:?}"
    );
    assert!(fixture.instance_containers().await.is_empty(), "instances left after rollback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_signal_fails_the_create_at_once() {
    let fixture = Fixture::new().await;
    let template = one_instance_group(
        &[
            "#!/bin/bash",
            "false",
            "/opt/aws/bin/cfn-signal -e $? --stack ${AWS::StackName} --resource Group \\",
            "  --region ${AWS::Region} --reason \"configuration failed\"",
        ],
        "PT10M",
    );
    let stack = fixture.create_from_body("failing", &template).await;
    assert_eq!(stack.stack_status, "ROLLBACK_COMPLETE", "{stack:?}");
    let events = fixture
        .service
        .describe_stack_events(DescribeStackEventsInput { stack_name: stack.stack_id.clone() })
        .unwrap();
    assert!(
        events.stack_events.iter().any(|event| event
            .resource_status_reason
            .as_deref()
            .is_some_and(|reason| reason.contains("Received FAILURE signal")
                && reason.contains("configuration failed"))),
        "{events:#?}"
    );
    assert!(fixture.instance_containers().await.is_empty());
}

/// A stack of one instance whose group waits for one signal within `timeout`.
fn one_instance_group(user_data: &[&str], timeout: &str) -> String {
    let script: String = user_data.iter().map(|line| format!("          {line}\n")).collect();
    format!(
        r#"
Resources:
  Config:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: {image}
      InstanceType: t3.micro
      UserData: !Base64
        Fn::Sub: |
{script}  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    CreationPolicy:
      ResourceSignal:
        Count: 1
        Timeout: {timeout}
    Properties:
      MinSize: '1'
      MaxSize: '1'
      LaunchConfigurationName: !Ref Config
      AvailabilityZones: !GetAZs ''
"#,
        image = support::WEBAPP
    )
}
