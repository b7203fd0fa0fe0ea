//! The lab's two stacks, rewritten as fixtures, through the public API:
//! parsed, validated, parameters resolved, ordered and evaluated, the base
//! stack's exports feeding the application stack's imports.

use std::collections::{BTreeMap, BTreeSet};

use autopatch_documents::SourceFile;
use autopatch_documents::cloudformation::{
    ExprKind, Setting, StaticContext, Template, Value, dependency_order, evaluate,
    evaluate_conditions, parse_template, resolve_parameters,
};
use expect_test::expect;

fn lab_template(name: &str, text: &str) -> Template {
    let file = SourceFile::new(format!("tests/fixtures/cloudformation/{name}"), text);
    match parse_template(&file) {
        Ok(template) => template,
        Err(diagnostics) => panic!("{name} should validate clean:\n{diagnostics}"),
    }
}

fn base() -> Template {
    lab_template("pattern3-base.yml", include_str!("../fixtures/cloudformation/pattern3-base.yml"))
}

fn application() -> Template {
    lab_template(
        "pattern3-application.yml",
        include_str!("../fixtures/cloudformation/pattern3-application.yml"),
    )
}

/// A stack named `stack_name` in ap-southeast-2 whose resources' physical
/// ids are `<name>-id` and attributes `<name>.<attribute>`.
fn stack(
    template: &Template,
    stack_name: &str,
    parameters: &BTreeMap<String, String>,
) -> StaticContext {
    let mut ctx = StaticContext::for_template(template, parameters);
    for (name, value) in [
        ("AWS::Region", "ap-southeast-2"),
        ("AWS::StackName", stack_name),
        ("AWS::StackId", "arn:aws:cloudformation:ap-southeast-2:123456789012:stack/x/1"),
        ("AWS::Partition", "aws"),
        ("AWS::AccountId", "123456789012"),
    ] {
        ctx.pseudo_parameters.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    for (name, resource) in &template.resources {
        ctx.resource_refs.insert(name.to_string(), Value::String(format!("{name}-id")));
        if let Some(spec) =
            autopatch_documents::cloudformation::resource_type(&resource.resource_type.value)
        {
            for attribute in spec.attributes {
                ctx.resource_attributes.insert(
                    (name.to_string(), (*attribute).to_owned()),
                    Value::String(format!("{name}.{attribute}")),
                );
            }
        }
    }
    ctx
}

/// Every export of `template` evaluated in `ctx`: name to value.
fn exports(template: &Template, ctx: &StaticContext) -> BTreeMap<String, Value> {
    template
        .outputs
        .values()
        .filter_map(|output| {
            let name = evaluate(output.export_name.as_ref()?, ctx).unwrap();
            Some((name.as_str().unwrap().to_owned(), evaluate(&output.value, ctx).unwrap()))
        })
        .collect()
}

#[test]
fn base_stack_order_and_exports() {
    let template = base();
    assert!(template.parameters.is_empty());
    let values = resolve_parameters(&template, &BTreeMap::new(), None, &BTreeSet::new()).unwrap();
    let ctx = stack(&template, "pattern3-base", &values);
    let conditions = evaluate_conditions(&template, &ctx).unwrap();
    let order = dependency_order(&template, &conditions).unwrap();
    let names: Vec<String> = order.iter().map(ToString::to_string).collect();
    expect![[r#"
        Pattern3InternetGateway
        Pattern3VPC
        Pattern3GatewayAttachment
        Pattern3NatGatewayEIP
        Pattern3PrivateRouteTable1
        Pattern3PrivateRouteTable2
        Pattern3PrivateSubnet1
        Pattern3PrivateSubnet1RouteTableAssociation
        Pattern3PrivateSubnet2
        Pattern3PrivateSubnet2RouteTableAssociation
        Pattern3PublicRouteTable1
        Pattern3PublicRoute1
        Pattern3PublicRouteTable2
        Pattern3PublicRoute2
        Pattern3PublicSubnet1
        Pattern3NatGateway
        Pattern3PrivateRoute1
        Pattern3PrivateRoute2
        Pattern3PublicSubnet1RouteTableAssociation
        Pattern3PublicSubnet2
        Pattern3PublicSubnet2RouteTableAssociation"#]]
    .assert_eq(&names.join("\n"));
    let exports = exports(&template, &ctx);
    expect![[r#"{"pattern3-base-PrivateSubnet1": String("Pattern3PrivateSubnet1-id"), "pattern3-base-PrivateSubnet2": String("Pattern3PrivateSubnet2-id"), "pattern3-base-PublicSubnet1": String("Pattern3PublicSubnet1-id"), "pattern3-base-PublicSubnet2": String("Pattern3PublicSubnet2-id"), "pattern3-base-VpcId": String("Pattern3VPC-id")}"#]]
        .assert_eq(&format!("{exports:?}"));
}

#[test]
fn application_stack_on_the_base_stack() {
    let base_template = base();
    let base_ctx = stack(&base_template, "pattern3-base", &BTreeMap::new());
    let template = application();

    let given = BTreeMap::from([
        ("BaselineVpcStack".to_owned(), "pattern3-base".to_owned()),
        ("AmazonMachineImage".to_owned(), "golden/1.0.0/1".to_owned()),
    ]);
    let values = resolve_parameters(&template, &given, None, &BTreeSet::new()).unwrap();
    expect![[r#"{"AmazonMachineImage": "golden/1.0.0/1", "BaselineVpcStack": "pattern3-base", "MaxNumberOfInstanceCluster": "2", "NumberOfInstanceCluster": "2"}"#]]
        .assert_eq(&format!("{values:?}"));
    let mut ctx = stack(&template, "pattern3-app", &values);

    // Without the base stack's exports, the first import fails, at its place.
    let alb = template.resources["Pattern3ALB"].properties.as_ref().unwrap();
    expect!["31:11: no export named `pattern3-base-PublicSubnet1` to import; expected a name exported by another stack"]
        .assert_eq(&evaluate(alb, &ctx).unwrap_err().to_string());

    ctx.imports = exports(&base_template, &base_ctx);
    let conditions = evaluate_conditions(&template, &ctx).unwrap();
    let order = dependency_order(&template, &conditions).unwrap();
    let names: Vec<String> = order.iter().map(ToString::to_string).collect();
    expect![[r#"
        Pattern3ALBTargetGroup
        Pattern3ELBSecurityGroup
        Pattern3ALB
        Pattern3ALBListener
        Pattern3Ec2InstanceRole
        Pattern3Ec2InstanceProfile
        Pattern3InstanceSecurityGroup
        Pattern3ASGLaunchConfig
        Pattern3ASG"#]]
    .assert_eq(&names.join("\n"));

    expect![[r#"{"SecurityGroups": ["Pattern3ELBSecurityGroup-id"], "Subnets": ["Pattern3PublicSubnet1-id", "Pattern3PublicSubnet2-id"]}"#]]
        .assert_eq(&evaluate(alb, &ctx).unwrap().to_string());
    let asg = &template.resources["Pattern3ASG"];
    expect![[r#"{"DesiredCapacity": "2", "HealthCheckGracePeriod": 60, "HealthCheckType": "ELB", "LaunchConfigurationName": "Pattern3ASGLaunchConfig-id", "MaxSize": "2", "MinSize": "0", "Tags": [{"Key": "Name", "PropagateAtLaunch": true, "Value": "pattern3-app-AutoScalingGroupInstance"}, {"Key": "ResourceType", "PropagateAtLaunch": true, "Value": "WebServer"}], "TargetGroupARNs": ["Pattern3ALBTargetGroup-id"], "VPCZoneIdentifier": ["Pattern3PrivateSubnet1-id", "Pattern3PrivateSubnet2-id"]}"#]]
        .assert_eq(&evaluate(asg.properties.as_ref().unwrap(), &ctx).unwrap().to_string());

    // The lab's policies: blue/green replacement, two signals within 5 minutes.
    let update = asg.update_policy.as_ref().unwrap();
    assert_eq!(update.replacing_update.as_ref().unwrap().will_replace, Setting::Given(true));
    assert!(update.rolling_update.is_none());
    let signal = asg.creation_policy.as_ref().unwrap().resource_signal.as_ref().unwrap();
    assert_eq!(signal.count.resolve(&ctx), Ok(2));
    assert_eq!(signal.timeout.resolve(&ctx).unwrap().seconds, 300);

    // The user data is base64 of a script naming the stack and the group.
    let launch_config = &template.resources["Pattern3ASGLaunchConfig"];
    let user_data = launch_config.property("UserData").unwrap();
    assert!(matches!(user_data.kind, ExprKind::Base64(_)));
    let Value::String(encoded) = evaluate(user_data, &ctx).unwrap() else { panic!("a string") };
    assert!(encoded.starts_with("IyEvYmluL2Jhc2ggLXgK"), "{encoded}");

    let outputs: BTreeMap<&str, String> = template
        .outputs
        .iter()
        .map(|(name, output)| (name.as_str(), evaluate(&output.value, &ctx).unwrap().to_string()))
        .collect();
    expect![[r#"{"OutputPattern3ALB": "\"Pattern3ALB-id\"", "OutputPattern3ALBDNSName": "\"Pattern3ALB.DNSName\"", "OutputPattern3ELBSecurityGroup": "\"Pattern3ELBSecurityGroup-id\"", "OutputPattern3InstanceSecurityGroup": "\"Pattern3InstanceSecurityGroup-id\""}"#]]
        .assert_eq(&format!("{outputs:?}"));
}

#[test]
fn application_stack_parameters_keep_previous_values() {
    let template = application();
    let previous = BTreeMap::from([
        ("BaselineVpcStack".to_owned(), "pattern3-base".to_owned()),
        ("AmazonMachineImage".to_owned(), "golden/1.0.0/1".to_owned()),
        ("NumberOfInstanceCluster".to_owned(), "3".to_owned()),
        ("MaxNumberOfInstanceCluster".to_owned(), "4".to_owned()),
    ]);
    // The lab's runbook: a new image, BaselineVpcStack with UsePreviousValue.
    let given = BTreeMap::from([("AmazonMachineImage".to_owned(), "golden/1.0.1/1".to_owned())]);
    let use_previous = BTreeSet::from(["BaselineVpcStack".to_owned()]);
    let values = resolve_parameters(&template, &given, Some(&previous), &use_previous).unwrap();
    expect![[r#"{"AmazonMachineImage": "golden/1.0.1/1", "BaselineVpcStack": "pattern3-base", "MaxNumberOfInstanceCluster": "4", "NumberOfInstanceCluster": "3"}"#]]
        .assert_eq(&format!("{values:?}"));
    let errors =
        resolve_parameters(&template, &BTreeMap::new(), None, &BTreeSet::new()).unwrap_err();
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    expect![[r#"
        parameter `AmazonMachineImage`: no value given and no default; expected a value
        parameter `BaselineVpcStack`: no value given and no default; expected a value"#]]
    .assert_eq(&errors.join("\n"));
}
