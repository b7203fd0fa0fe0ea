//! QA s10 H1 on real Podman, with QA's template (`roll.yml`): a group in a
//! target group that no listener uses, whose instances run the webapp and
//! call `cfn-signal`, is rolled to new user data. Its targets are `unused`
//! (as on AWS), so the batches gate on the signals alone, and the update
//! completes; the events say what happened, in CloudFormation's words.

mod support;

use autopatch_stacks::api::*;
use support::{Fixture, WEBAPP, parameter};

const ROLL: &str = r#"AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Image:
    Type: String
  Size:
    Type: String
    Default: "1"
  Max:
    Type: String
    Default: "2"
  Tag:
    Type: String
    Default: v1
  Signal:
    Type: String
    Default: "yes"
Conditions:
  DoSignal: !Equals [!Ref Signal, "yes"]
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.9.0.0/16
  Sub1:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.9.1.0/24
      AvailabilityZone: !Select [0, !GetAZs '']
  TG:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 80
      Protocol: HTTP
      VpcId: !Ref Vpc
      HealthCheckIntervalSeconds: 5
      HealthCheckTimeoutSeconds: 2
      HealthyThresholdCount: 2
      TargetGroupAttributes:
        - Key: deregistration_delay.timeout_seconds
          Value: "2"
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties:
      ImageId: !Ref Image
      InstanceType: t3.micro
      UserData:
        Fn::Base64: !Sub
          - |
            #!/bin/bash
            echo "${Tag}" > /tmp/tag
            apache2ctl start
            timeout 30 bash -c 'until curl -fsS -o /dev/null http://127.0.0.1/; do sleep 1; done'
            ${Cmd}
          - Cmd: !If [DoSignal, !Sub "/opt/aws/bin/cfn-signal -e $? --stack ${AWS::StackName} --resource ASG --region ${AWS::Region}", "true"]
  ASG:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: "0"
      MaxSize: !Ref Max
      DesiredCapacity: !Ref Size
      LaunchConfigurationName: !Ref LC
      TargetGroupARNs: [!Ref TG]
      VPCZoneIdentifier: [!Ref Sub1]
    CreationPolicy:
      ResourceSignal:
        Count: !Ref Size
        Timeout: PT2M
    UpdatePolicy:
      AutoScalingRollingUpdate:
        MinInstancesInService: 1
        MaxBatchSize: 1
        PauseTime: PT1M
        WaitOnResourceSignals: true
Outputs:
  Group:
    Value: !Ref ASG
"#;

fn only_group(fixture: &Fixture) -> AutoScalingGroup {
    let mut groups = fixture.service.describe_auto_scaling_groups(Default::default()).unwrap();
    assert_eq!(groups.auto_scaling_groups.len(), 1, "{groups:?}");
    groups.auto_scaling_groups.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_of_a_group_no_listener_serves_completes_on_its_signals() {
    let fixture = Fixture::new().await;
    let input = CreateStackInput {
        stack_name: "roll".into(),
        template_body: Some(ROLL.into()),
        parameters: vec![parameter("Image", WEBAPP), parameter("Size", "2")],
        ..Default::default()
    };
    let created = fixture.service.create_stack(input).await.unwrap();
    fixture.service.wait_idle(&created.stack_id).await;
    let events = || -> Vec<String> {
        fixture
            .store
            .stack_events(&created.stack_id)
            .unwrap()
            .into_iter()
            .map(|event| {
                format!(
                    "{} {} {}",
                    event.logical_id,
                    event.status,
                    event.reason.unwrap_or_default()
                )
            })
            .collect()
    };
    let stack = fixture.describe(&created.stack_id);
    assert_eq!(stack.stack_status, "CREATE_COMPLETE", "{:#?}", events());
    let group = only_group(&fixture);
    let before: Vec<String> = group.instances.iter().map(|i| i.instance_id.clone()).collect();
    let targets = fixture
        .service
        .describe_target_health(DescribeTargetHealthInput {
            target_group_arn: group.target_group_arns[0].clone(),
        })
        .unwrap();
    assert!(
        targets
            .target_health_descriptions
            .iter()
            .all(|target| target.target_health.state == "unused"),
        "{targets:?}"
    );

    let update = UpdateStackInput {
        stack_name: "roll".into(),
        use_previous_template: Some(true),
        parameters: vec![parameter("Tag", "v2")],
        ..Default::default()
    };
    fixture.service.update_stack(update).await.unwrap();
    fixture.service.wait_idle(&created.stack_id).await;
    let events = events();
    let stack = fixture.describe(&created.stack_id);
    assert_eq!(stack.stack_status, "UPDATE_COMPLETE", "{events:#?}");
    let group = only_group(&fixture);
    assert_eq!(group.instances.len(), 2, "{group:?}");
    assert!(group.instances.iter().all(|i| !before.contains(&i.instance_id)), "every instance new");
    for expected in [
        "ASG UPDATE_IN_PROGRESS Rolling update initiated. Terminating 2 obsolete instance(s) in batches of 1, while keeping at least 1 instance(s) in service. Waiting on resource signals with a timeout of PT1M when new instances are added to the autoscaling group.",
        "ASG UPDATE_IN_PROGRESS Successfully terminated instance(s) [",
        "ASG UPDATE_IN_PROGRESS Received SUCCESS signal with UniqueId i-",
        "ASG CREATE_IN_PROGRESS Received SUCCESS signal with UniqueId i-",
    ] {
        assert!(events.iter().any(|event| event.starts_with(expected)), "{expected}: {events:#?}");
    }
    fixture.delete("roll").await;
    assert!(fixture.instance_containers().await.is_empty());
}
