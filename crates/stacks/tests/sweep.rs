//! The end-of-operation sweep on real Podman: an Auto Scaling group of a
//! stack that no resource row names any more (what a crash mid-update, or a
//! store written by an older autopatch, can leave) is deleted when the next
//! operation ends. Its target drains like any retired one: as soon as no
//! request to it is in flight, not for its target group's deregistration
//! delay (an hour here), and no request through the load balancer fails
//! while the group the stack names keeps serving.

mod support;

use std::time::Duration;

use autopatch_engine::Engine;
use autopatch_stacks::api::*;
use autopatch_store::StackResourceRow;
use autopatch_watch::WatchConfig;
use support::{Fixture, WEBAPP};

/// How long the update may take before the test gives up: a watchdog far
/// below the deregistration delay, not a measure of anything.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Two groups of one webapp instance each behind one load balancer; the
/// target group's deregistration delay is an hour (AWS's longest).
fn template() -> String {
    format!(
        r#"
Resources:
  Balancer:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
  Targets:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 80
      Protocol: HTTP
      HealthCheckIntervalSeconds: 2
      HealthCheckTimeoutSeconds: 2
      HealthyThresholdCount: 2
      TargetGroupAttributes:
        - Key: deregistration_delay.timeout_seconds
          Value: "3600"
  Listener:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Balancer
      Port: 80
      Protocol: HTTP
      DefaultActions:
        - Type: forward
          TargetGroupArn: !Ref Targets
  Launch:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: {WEBAPP}
      InstanceType: t3.micro
      UserData:
        Fn::Base64: |
          #!/bin/bash
          apache2ctl start
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      LaunchConfigurationName: !Ref Launch
      MinSize: 1
      MaxSize: 1
      DesiredCapacity: 1
      TargetGroupARNs: [!Ref Targets]
  Leftover:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      LaunchConfigurationName: !Ref Launch
      MinSize: 1
      MaxSize: 1
      DesiredCapacity: 1
      TargetGroupARNs: [!Ref Targets]
Outputs:
  Url:
    Value: !GetAtt Balancer.DNSName
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_no_row_names_drains_until_nothing_is_in_flight_not_for_the_delay() {
    let fixture = Fixture::new().await;
    let stack = fixture.create_from_body("sweep", &template()).await;
    assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{stack:?}");
    let rows = fixture.store.stack_resources(&stack.stack_id).unwrap();
    let row = |logical_id: &str| rows.iter().find(|row| row.logical_id == logical_id).unwrap();
    let target_group = row("Targets").physical_id.clone().unwrap();
    let kept = row("Group").physical_id.clone().unwrap();
    let leftover = row("Leftover").physical_id.clone().unwrap();
    fixture.wait_healthy(&target_group, 2).await;

    // The row forgets its group: it names the other one, and nothing names
    // the leftover group, which still runs and serves.
    let forgetful = StackResourceRow { physical_id: Some(kept.clone()), ..row("Leftover").clone() };
    fixture.store.put_stack_resource(&forgetful).unwrap();

    let url = format!("http://{}/", stack.outputs[0].output_value);
    let config = WatchConfig {
        concurrency: 4,
        rate: Some(200.0),
        duration: Some(Duration::from_secs(600)),
        ..WatchConfig::new(&url)
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let load = tokio::spawn(async move {
        autopatch_watch::run(&config, |_| {}, async {
            let _ = stopped.await;
        })
        .await
        .expect("the load runs")
    });
    // Steady load before the update starts.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Any operation ends with the sweep; this update only adds an output.
    let body = format!("{}  Note:\n    Value: swept\n", template());
    let input = UpdateStackInput {
        stack_name: "sweep".into(),
        template_body: Some(body),
        ..Default::default()
    };
    fixture.service.update_stack(input).await.unwrap();
    if tokio::time::timeout(WATCHDOG, fixture.service.wait_idle(&stack.stack_id)).await.is_err() {
        panic!(
            "the update did not end: its sweep waits for the deregistration delay ({})",
            fixture.describe(&stack.stack_id).stack_status
        );
    }
    let _ = stop.send(());
    let outcome = load.await.unwrap();
    assert_eq!(fixture.describe(&stack.stack_id).stack_status, "UPDATE_COMPLETE");

    // The leftover group is gone, with its own events; the named one serves
    // on, and no request failed.
    let events: Vec<(String, String, Option<String>)> = fixture
        .store
        .stack_events(&stack.stack_id)
        .unwrap()
        .into_iter()
        .filter(|event| event.physical_id.as_deref() == Some(leftover.as_str()))
        .map(|event| (event.logical_id, event.status, event.reason))
        .collect();
    assert!(
        events.ends_with(&[
            (
                "Leftover".to_owned(),
                "DELETE_IN_PROGRESS".to_owned(),
                Some("An Auto Scaling group of this stack that no resource names any more".into())
            ),
            ("Leftover".to_owned(), "DELETE_COMPLETE".to_owned(), None),
        ]),
        "{events:?}"
    );
    let label = |group: &str| [("autopatch.group".to_owned(), group.to_owned())];
    assert!(fixture.engine.container_list(&label(&leftover)).await.unwrap().is_empty());
    assert_eq!(fixture.engine.container_list(&label(&kept)).await.unwrap().len(), 1);
    let summary = &outcome.summary;
    assert_eq!(summary.failures, 0, "failed requests during the sweep: {summary:?}");
    assert!(summary.successes > 100, "the load ran: {summary:?}");

    fixture.delete("sweep").await;
    assert!(fixture.instance_containers().await.is_empty());
}
