//! Stack updates on real Podman with the shipped lab templates, under load
//! from `autopatch watch`'s runner:
//! - a replacing update (the lab's `AutoScalingReplacingUpdate`) from image
//!   A to image B: no failed request, every instance on B, nothing of A left;
//! - an update to an image whose web server never starts: the stack rolls
//!   back by itself, no failed request, the same A instances still serve;
//! - a rolling update with `MinInstancesInService: 1`: the load balancer's
//!   own state history never shows fewer than one healthy target;
//! - a failed update of a group launched from a launch template's latest
//!   version: the rollback restores the same instances and ends (QA s9b).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use autopatch_engine::{ContainerSpec, Engine};
use autopatch_stacks::api::*;
use autopatch_watch::{Outcome, WatchConfig};
use support::{Fixture, WEBAPP, curl, parameter};

/// The base stack and the app stack on image A; returns the app's URL and
/// its target group.
async fn lab(fixture: &Fixture, template: Option<&str>) -> (String, String) {
    let base = fixture.create("pattern3-base", "pattern3-base.yml", &[]).await;
    assert_eq!(base.stack_status, "CREATE_COMPLETE", "{base:?}");
    let parameters = [("BaselineVpcStack", "pattern3-base"), ("AmazonMachineImage", WEBAPP)];
    let app = match template {
        None => fixture.create("pattern3-app", "pattern3-app.yml", &parameters).await,
        Some(body) => {
            let input = CreateStackInput {
                stack_name: "pattern3-app".into(),
                template_body: Some(body.into()),
                parameters: parameters.iter().map(|(key, value)| parameter(key, value)).collect(),
                ..Default::default()
            };
            let created = fixture.service.create_stack(input).await.unwrap();
            fixture.service.wait_idle(&created.stack_id).await;
            fixture.describe(&created.stack_id)
        }
    };
    assert_eq!(app.stack_status, "CREATE_COMPLETE", "{app:?}");
    let dns = output(&app, "OutputPattern3ALBDNSName");
    let group = group(fixture);
    let target_group = group.target_group_arns[0].clone();
    fixture.wait_healthy(&target_group, 2).await;
    (format!("http://{dns}/"), target_group)
}

fn output(stack: &Stack, key: &str) -> String {
    stack.outputs.iter().find(|output| output.output_key == key).unwrap().output_value.clone()
}

fn group(fixture: &Fixture) -> AutoScalingGroup {
    let mut groups = fixture.service.describe_auto_scaling_groups(Default::default()).unwrap();
    assert_eq!(groups.auto_scaling_groups.len(), 1, "{groups:?}");
    groups.auto_scaling_groups.remove(0)
}

/// Updates pattern3-app to `image` (every other parameter kept), under
/// load, and returns the final stack and what the load saw.
async fn update_under_load(fixture: &Fixture, url: &str, image: &str) -> (Stack, Outcome) {
    let config = WatchConfig {
        concurrency: 4,
        rate: Some(200.0),
        duration: Some(Duration::from_secs(600)),
        ..WatchConfig::new(url)
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
    let input = UpdateStackInput {
        stack_name: "pattern3-app".into(),
        use_previous_template: Some(true),
        parameters: vec![parameter("AmazonMachineImage", image)],
        ..Default::default()
    };
    let updated = fixture.service.update_stack(input).await.unwrap();
    fixture.service.wait_idle(&updated.stack_id).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(());
    let outcome = load.await.unwrap();
    (fixture.describe(&updated.stack_id), outcome)
}

/// Image B: image A under another name (so another image id), one name per
/// test (the runner may run tests in separate processes at once).
async fn tag_b(fixture: &Fixture, test: &str) -> String {
    let reference = format!("localhost/autopatch-test/webapp-b:{test}");
    fixture.engine.image_tag(WEBAPP, &reference).await.expect("tag image B");
    reference
}

/// An image whose web server never starts: image A with `apache2ctl`
/// replaced by a script that fails.
async fn broken_image(fixture: &Fixture, test: &str) -> String {
    let reference = format!("localhost/autopatch-test/webapp-broken:{test}");
    let spec = ContainerSpec { image: WEBAPP.into(), ..ContainerSpec::default() };
    let container = fixture.engine.container_create(&spec).await.expect("created");
    fixture
        .engine
        .put_file(&container.id, "/usr/sbin/apache2ctl", b"#!/bin/sh\nexit 1\n", 0o755)
        .await
        .expect("written");
    fixture.engine.commit(&container.id, &reference, &[]).await.expect("committed");
    fixture.engine.container_remove(&container.id).await.expect("removed");
    reference
}

fn events(fixture: &Fixture, stack: &str) -> Vec<StackEvent> {
    let mut events = fixture
        .service
        .describe_stack_events(DescribeStackEventsInput { stack_name: stack.into() })
        .unwrap()
        .stack_events;
    events.reverse();
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacing_update_moves_every_instance_to_the_new_image_without_a_failed_request() {
    let fixture = Fixture::new().await;
    let (url, _) = lab(&fixture, None).await;
    let old = group(&fixture);
    let image_b = tag_b(&fixture, "replacing").await;

    let (stack, outcome) = update_under_load(&fixture, &url, &image_b).await;
    assert_eq!(stack.stack_status, "UPDATE_COMPLETE", "{stack:?}");
    let summary = &outcome.summary;
    assert_eq!(summary.failures, 0, "failed requests during the update: {summary:?}");
    assert!(summary.successes > 100, "the load ran: {summary:?}");
    // Both images served during the update (the page carries X-Image-Id).
    let images: BTreeSet<&str> = summary.images.iter().map(|count| count.image.as_str()).collect();
    assert!(images.contains(WEBAPP) && images.contains(image_b.as_str()), "{images:?}");

    // A new group with two instances of B; the old group is gone.
    let new = group(&fixture);
    assert_ne!(new.auto_scaling_group_name, old.auto_scaling_group_name);
    assert_eq!(new.instances.len(), 2, "{new:?}");
    assert!(new.instances.iter().all(|i| i.image_id.as_deref() == Some(image_b.as_str())));
    let containers = fixture.instance_containers().await;
    assert_eq!(containers.len(), 2, "nothing of A is left: {containers:?}");
    for _ in 0..4 {
        let details = curl(&format!("{url}details.php"));
        assert!(details.contains(&format!("Amazon Image Id:</b> {image_b}")), "{details}");
    }
    // CloudFormation's story: a new group, then the old one deleted in cleanup.
    let mut story: Vec<(String, String)> = events(&fixture, "pattern3-app")
        .into_iter()
        .filter(|event| {
            event.logical_resource_id == "Pattern3ASG"
                || event.resource_type == "AWS::CloudFormation::Stack"
        })
        .map(|event| {
            let who = if event.physical_resource_id.as_deref()
                == Some(old.auto_scaling_group_name.as_str())
            {
                "old".to_owned()
            } else {
                event.logical_resource_id.clone()
            };
            (who, event.resource_status)
        })
        .skip_while(|(_, status)| status != "UPDATE_IN_PROGRESS")
        .collect();
    // Repeated `_IN_PROGRESS` events of one resource (its progress: the
    // signals received) count once.
    story.dedup_by(|later, earlier| later == earlier && later.1.ends_with("_IN_PROGRESS"));
    let expected: Vec<(String, String)> = autopatch_testkit::REPLACING_UPDATE_STORY
        .iter()
        .map(|(who, status)| (who.to_string(), status.to_string()))
        .collect();
    assert_eq!(story, expected);

    // Same image again: nothing to do, and it says so.
    let again = fixture
        .service
        .update_stack(UpdateStackInput {
            stack_name: "pattern3-app".into(),
            use_previous_template: Some(true),
            parameters: vec![parameter("AmazonMachineImage", &image_b)],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.message, "No updates are to be performed.");

    fixture.delete("pattern3-app").await;
    fixture.delete("pattern3-base").await;
    assert!(fixture.instance_containers().await.is_empty());
    let _ = fixture.engine.image_remove(&image_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_to_an_image_whose_web_server_never_starts_rolls_back_without_a_failed_request() {
    let fixture = Fixture::new().await;
    let (url, _) = lab(&fixture, None).await;
    let old = group(&fixture);
    let old_instances: BTreeSet<String> =
        old.instances.iter().map(|i| i.instance_id.clone()).collect();
    let broken = broken_image(&fixture, "rollback").await;

    // A name that is no image at all is refused before anything starts.
    let refused = fixture
        .service
        .update_stack(UpdateStackInput {
            stack_name: "pattern3-app".into(),
            use_previous_template: Some(true),
            parameters: vec![parameter("AmazonMachineImage", "localhost/no-such-image:1")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        refused.message.contains("image localhost/no-such-image:1 does not exist"),
        "{refused}"
    );
    assert_eq!(fixture.describe("pattern3-app").stack_status, "CREATE_COMPLETE");

    let (stack, outcome) = update_under_load(&fixture, &url, &broken).await;
    assert_eq!(stack.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{stack:?}");
    assert_eq!(outcome.summary.failures, 0, "{:?}", outcome.summary);
    // The very same instances of A serve; nothing of the broken group is left.
    let after = group(&fixture);
    assert_eq!(after.auto_scaling_group_name, old.auto_scaling_group_name);
    let instances: BTreeSet<String> =
        after.instances.iter().map(|i| i.instance_id.clone()).collect();
    assert_eq!(instances, old_instances);
    assert_eq!(fixture.instance_containers().await.len(), 2);
    let details = curl(&format!("{url}details.php"));
    assert!(details.contains(&format!("Amazon Image Id:</b> {WEBAPP}")), "{details}");
    // The parameter is back to A, and the events say why.
    let parameters = &fixture.describe("pattern3-app").parameters;
    let image = parameters.iter().find(|p| p.parameter_key == "AmazonMachineImage").unwrap();
    assert_eq!(image.parameter_value.as_deref(), Some(WEBAPP));
    let failed = events(&fixture, "pattern3-app")
        .into_iter()
        .find(|event| event.resource_status == "UPDATE_FAILED")
        .expect("an UPDATE_FAILED event");
    assert!(
        failed.resource_status_reason.as_deref().unwrap_or("").contains("FAILURE signal"),
        "{failed:?}"
    );

    fixture.delete("pattern3-app").await;
    fixture.delete("pattern3-base").await;
    let _ = fixture.engine.image_remove(&broken).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_never_has_fewer_healthy_targets_than_min_instances_in_service() {
    let fixture = Fixture::new().await;
    let shipped =
        std::fs::read_to_string(support::repo_root().join("templates/pattern3-app.yml")).unwrap();
    let replacing =
        "    UpdatePolicy:\n      AutoScalingReplacingUpdate:\n        WillReplace: true\n";
    assert!(shipped.contains(replacing), "the shipped template's update policy");
    let rolling = shipped.replace(
        replacing,
        "    UpdatePolicy:\n      AutoScalingRollingUpdate:\n        MinInstancesInService: 1\n        MaxBatchSize: 1\n        WaitOnResourceSignals: true\n        PauseTime: PT2M\n",
    );
    let (url, target_group) = lab(&fixture, Some(&rolling)).await;
    let old = group(&fixture);
    let image_b = tag_b(&fixture, "rolling").await;
    let before = fixture.service.target_health_history(&target_group).unwrap();
    let started = before.transitions().len();

    let (stack, outcome) = update_under_load(&fixture, &url, &image_b).await;
    assert_eq!(stack.stack_status, "UPDATE_COMPLETE", "{stack:?}");
    assert_eq!(outcome.summary.failures, 0, "{:?}", outcome.summary);
    // The same group, its instances replaced one at a time by B ones.
    let after = group(&fixture);
    assert_eq!(after.auto_scaling_group_name, old.auto_scaling_group_name);
    assert_eq!(after.instances.len(), 2);
    assert!(after.instances.iter().all(|i| i.image_id.as_deref() == Some(image_b.as_str())));
    let history = fixture.service.target_health_history(&target_group).unwrap();
    let counts = history.healthy_counts();
    let during: Vec<usize> = counts[started.saturating_sub(1)..].iter().map(|(_, n)| *n).collect();
    assert!(during.len() > 4, "the update changed targets: {during:?}");
    assert!(
        during.iter().all(|healthy| *healthy >= 1),
        "healthy targets fell below MinInstancesInService=1: {during:?}"
    );
    // Two batches: never more than one old instance replaced at once.
    let terminated = history
        .transitions()
        .iter()
        .filter(|t| t.to == autopatch_loadbalancer::TargetState::Draining)
        .count();
    assert_eq!(terminated, 2, "{history:?}");

    fixture.delete("pattern3-app").await;
    fixture.delete("pattern3-base").await;
    let _ = fixture.engine.image_remove(&image_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_update_deletes_the_new_group_and_leaves_the_old_one_serving() {
    let fixture = Fixture::new().await;
    let (url, _) = lab(&fixture, None).await;
    let old = group(&fixture);
    let old_instances: BTreeSet<String> =
        old.instances.iter().map(|i| i.instance_id.clone()).collect();
    // The broken image keeps the new group waiting (its instances signal
    // failure only after their 30 s web server wait): room to cancel.
    let broken = broken_image(&fixture, "cancel").await;
    let input = UpdateStackInput {
        stack_name: "pattern3-app".into(),
        use_previous_template: Some(true),
        parameters: vec![parameter("AmazonMachineImage", &broken)],
        ..Default::default()
    };
    let updated = fixture.service.update_stack(input).await.unwrap();
    let mut waited = 0;
    while !events(&fixture, "pattern3-app").iter().any(|event| {
        event.logical_resource_id == "Pattern3ASG" && event.resource_status == "UPDATE_IN_PROGRESS"
    }) {
        waited += 1;
        assert!(waited < 600, "the new group never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fixture
        .service
        .cancel_update_stack(CancelUpdateStackInput { stack_name: "pattern3-app".into() })
        .await
        .unwrap();
    fixture.service.wait_idle(&updated.stack_id).await;
    let stack = fixture.describe("pattern3-app");
    assert_eq!(stack.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{stack:?}");
    let all = events(&fixture, "pattern3-app");
    assert!(
        all.iter().any(|event| event.resource_status == "UPDATE_ROLLBACK_IN_PROGRESS"
            && event.resource_status_reason.as_deref() == Some("Stack update cancelled")),
        "{all:#?}"
    );
    assert!(
        all.iter().any(|event| event.logical_resource_id == "Pattern3ASG"
            && event.resource_status == "UPDATE_FAILED"
            && event.resource_status_reason.as_deref() == Some("Resource update cancelled")),
        "{all:#?}"
    );
    let after = group(&fixture);
    assert_eq!(after.auto_scaling_group_name, old.auto_scaling_group_name);
    let instances: BTreeSet<String> =
        after.instances.iter().map(|i| i.instance_id.clone()).collect();
    assert_eq!(instances, old_instances, "the old group is untouched");
    assert_eq!(fixture.instance_containers().await.len(), 2, "the new group is gone");
    let page = curl(&url);
    assert!(page.contains("Welcome to Re:Invent 2020"), "{page}");

    fixture.delete("pattern3-app").await;
    fixture.delete("pattern3-base").await;
    let _ = fixture.engine.image_remove(&broken).await;
}

/// The lab's app stack with a launch template instead of the launch
/// configuration, the group launched from its latest version (QA s9b's
/// `lt.yml`).
fn launch_template_app() -> String {
    let shipped =
        std::fs::read_to_string(support::repo_root().join("templates/pattern3-app.yml")).unwrap();
    let start =
        shipped.find("  # No AWS::CloudFormation::Init metadata").expect("the launch config");
    let end = shipped.find("  Pattern3ASG:\n").expect("the group");
    let launch_template = r#"  Pattern3LT:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        ImageId: !Ref AmazonMachineImage
        InstanceType: m1.large
        SecurityGroupIds:
          - !Ref Pattern3InstanceSecurityGroup
        UserData:
          Fn::Base64: !Sub |
            #!/bin/bash
            apache2ctl start
            timeout 30 bash -c 'until curl -fsS -o /dev/null http://127.0.0.1/; do sleep 1; done'
            /opt/aws/bin/cfn-signal -e $? --stack ${AWS::StackName} --resource Pattern3ASG --region ${AWS::Region}

"#;
    let from_config = "      LaunchConfigurationName: !Ref Pattern3ASGLaunchConfig\n";
    assert!(shipped.contains(from_config), "the group's launch");
    let from_template = "      LaunchTemplate:\n        LaunchTemplateId: !Ref Pattern3LT\n        Version: !GetAtt Pattern3LT.LatestVersionNumber\n";
    format!("{}{launch_template}{}", &shipped[..start], &shipped[end..])
        .replace(from_config, from_template)
}

/// An image whose instances signal FAILURE at once: image A whose
/// `timeout` (the user data's wait for the page) fails.
async fn failing_signal_image(fixture: &Fixture, test: &str) -> String {
    let reference = format!("localhost/autopatch-test/webapp-signals-failure:{test}");
    let spec = ContainerSpec { image: WEBAPP.into(), ..ContainerSpec::default() };
    let container = fixture.engine.container_create(&spec).await.expect("created");
    fixture
        .engine
        .put_file(&container.id, "/usr/bin/timeout", b"#!/bin/sh\nexit 1\n", 0o755)
        .await
        .expect("written");
    fixture.engine.commit(&container.id, &reference, &[]).await.expect("committed");
    fixture.engine.container_remove(&container.id).await.expect("removed");
    reference
}

/// QA s9b: the rollback of a failed blue/green update of a group launched
/// from `!GetAtt Pattern3LT.LatestVersionNumber` replaced the old group
/// again and again. It restores the old group, with the launch template's
/// first version, and ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_update_of_a_launch_template_group_rolls_back_to_the_same_instances() {
    let fixture = Fixture::new().await;
    let (url, _) = lab(&fixture, Some(&launch_template_app())).await;
    let old = group(&fixture);
    let old_instances: BTreeSet<String> =
        old.instances.iter().map(|i| i.instance_id.clone()).collect();
    let failing = failing_signal_image(&fixture, "launch-template").await;

    let (stack, outcome) = update_under_load(&fixture, &url, &failing).await;
    let all = events(&fixture, "pattern3-app");
    assert_eq!(stack.stack_status, "UPDATE_ROLLBACK_COMPLETE", "{all:#?}");
    assert_eq!(outcome.summary.failures, 0, "{:?}", outcome.summary);
    let replacements = all
        .iter()
        .filter(|event| {
            event.resource_status_reason.as_deref().is_some_and(|reason| {
                reason.starts_with("Requested update requires the creation of a new physical")
            })
        })
        .count();
    assert_eq!(replacements, 1, "only the update made a group: {all:#?}");
    let after = group(&fixture);
    assert_eq!(after.auto_scaling_group_name, old.auto_scaling_group_name);
    let instances: BTreeSet<String> =
        after.instances.iter().map(|i| i.instance_id.clone()).collect();
    assert_eq!(instances, old_instances);
    assert_eq!(fixture.instance_containers().await.len(), 2, "the failed group is gone");
    let rows = fixture.store.stack_resources(&stack.stack_id).unwrap();
    let launch = rows.iter().find(|row| row.logical_id == "Pattern3LT").unwrap();
    let attributes: serde_json::Value = serde_json::from_str(&launch.attributes).unwrap();
    assert_eq!(attributes["LatestVersionNumber"], "1");

    fixture.delete("pattern3-app").await;
    fixture.delete("pattern3-base").await;
    assert!(fixture.instance_containers().await.is_empty());
    let _ = fixture.engine.image_remove(&failing).await;
}
