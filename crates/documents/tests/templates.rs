//! The shipped templates (`templates/pattern3-base.yml` and
//! `templates/pattern3-app.yml`) through the CloudFormation frontend: they
//! validate clean, use only supported resource types, resolve their
//! parameters, have a creation order, carry the lab's policies, and every
//! import of the application stack is an export of the base stack.

use std::collections::{BTreeMap, BTreeSet};

use autopatch_documents::SourceFile;
use autopatch_documents::cloudformation::{
    ExprKind, Setting, StaticContext, Template, Value, check_values, dependency_order, evaluate,
    evaluate_conditions, parse_template, resolve_parameters, resource_type,
};
use base64::Engine as _;
use expect_test::expect;

const BASE_STACK: &str = "pattern3-base";
const APP_STACK: &str = "pattern3-app";
const REGION: &str = "ap-southeast-2";

fn shipped(name: &str, text: &str) -> Template {
    let file = SourceFile::new(format!("templates/{name}"), text);
    match parse_template(&file) {
        Ok(template) => template,
        Err(diagnostics) => panic!("templates/{name} should validate clean:\n{diagnostics}"),
    }
}

fn base() -> Template {
    shipped("pattern3-base.yml", include_str!("../../../templates/pattern3-base.yml"))
}

fn app() -> Template {
    shipped("pattern3-app.yml", include_str!("../../../templates/pattern3-app.yml"))
}

/// The application stack's parameters as the docs' `stack create` gives them.
fn app_parameters() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("BaselineVpcStack".to_owned(), BASE_STACK.to_owned()),
        ("AmazonMachineImage".to_owned(), "webapp/1.0.0/1".to_owned()),
    ])
}

/// A stack named `stack_name` whose resources' physical ids are `<name>-id`
/// and attributes `<name>.<attribute>`, in a region with zones `a` and `b`.
fn stack(template: &Template, stack_name: &str, given: &BTreeMap<String, String>) -> StaticContext {
    let values = resolve_parameters(template, given, None, &BTreeSet::new())
        .unwrap_or_else(|errors| panic!("parameters of {stack_name} should resolve: {errors:?}"));
    let mut ctx = StaticContext::for_template(template, &values);
    for (name, value) in [
        ("AWS::Region", REGION),
        ("AWS::StackName", stack_name),
        ("AWS::StackId", "arn:aws:cloudformation:ap-southeast-2:123456789012:stack/x/1"),
        ("AWS::Partition", "aws"),
        ("AWS::AccountId", "123456789012"),
    ] {
        ctx.pseudo_parameters.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    ctx.availability_zones
        .insert(REGION.to_owned(), vec![format!("{REGION}a"), format!("{REGION}b")]);
    for (name, resource) in &template.resources {
        ctx.resource_refs.insert(name.to_string(), Value::String(format!("{name}-id")));
        let spec = resource_type(&resource.resource_type.value).expect("validated as supported");
        for attribute in spec.attributes {
            ctx.resource_attributes.insert(
                (name.to_string(), (*attribute).to_owned()),
                Value::String(format!("{name}.{attribute}")),
            );
        }
    }
    ctx
}

fn base_stack() -> (Template, StaticContext) {
    let template = base();
    let ctx = stack(&template, BASE_STACK, &BTreeMap::new());
    (template, ctx)
}

/// The application stack on top of the base stack: its imports answered by
/// the base stack's exports.
fn app_stack() -> (Template, StaticContext) {
    let (base_template, base_ctx) = base_stack();
    let template = app();
    let mut ctx = stack(&template, APP_STACK, &app_parameters());
    ctx.imports = exports(&base_template, &base_ctx);
    (template, ctx)
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

/// The names of every `Fn::ImportValue` in `template`, evaluated in `ctx`.
fn imports(template: &Template, ctx: &StaticContext) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let exprs = template
        .resources
        .values()
        .filter_map(|resource| resource.properties.as_ref())
        .chain(template.outputs.values().map(|output| &output.value));
    for expr in exprs {
        expr.walk(&mut |expr| {
            if let ExprKind::ImportValue(name) = &expr.kind {
                let name = evaluate(name, ctx).unwrap();
                names.insert(name.as_str().unwrap().to_owned());
            }
        });
    }
    names
}

fn order(template: &Template, ctx: &StaticContext) -> String {
    let conditions = evaluate_conditions(template, ctx).unwrap();
    let order = dependency_order(template, &conditions).unwrap();
    assert_eq!(order.len(), template.resources.len(), "every resource is created");
    order.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

fn property(template: &Template, resource: &str, name: &str, ctx: &StaticContext) -> String {
    let expr = template.resources[resource]
        .property(name)
        .unwrap_or_else(|| panic!("{resource} has {name}"));
    evaluate(expr, ctx).unwrap().to_string()
}

#[test]
fn every_resource_type_is_supported() {
    for template in [base(), app()] {
        for (name, resource) in &template.resources {
            let type_name = &resource.resource_type.value;
            let spec = resource_type(type_name)
                .unwrap_or_else(|| panic!("{name}: {type_name} is not supported"));
            if let Some(ExprKind::Map(entries)) =
                resource.properties.as_ref().map(|properties| &properties.kind)
            {
                for (key, _) in entries {
                    assert!(spec.has_property(&key.value), "{name}: {type_name}.{}", key.value);
                }
            }
        }
    }
    let types: BTreeSet<&str> = [base(), app()]
        .iter()
        .flat_map(|template| {
            template
                .resources
                .values()
                .map(|resource| resource_type(&resource.resource_type.value).unwrap().name)
                .collect::<Vec<_>>()
        })
        .collect();
    expect![[r#"
        AWS::AutoScaling::AutoScalingGroup
        AWS::AutoScaling::LaunchConfiguration
        AWS::EC2::EIP
        AWS::EC2::InternetGateway
        AWS::EC2::NatGateway
        AWS::EC2::Route
        AWS::EC2::RouteTable
        AWS::EC2::SecurityGroup
        AWS::EC2::Subnet
        AWS::EC2::SubnetRouteTableAssociation
        AWS::EC2::VPC
        AWS::EC2::VPCGatewayAttachment
        AWS::ElasticLoadBalancingV2::Listener
        AWS::ElasticLoadBalancingV2::LoadBalancer
        AWS::ElasticLoadBalancingV2::TargetGroup
        AWS::IAM::InstanceProfile
        AWS::IAM::Role"#]]
    .assert_eq(&types.into_iter().collect::<Vec<_>>().join("\n"));
}

#[test]
fn base_stack_spreads_subnets_over_two_zones_and_exports_them() {
    let (template, ctx) = base_stack();
    assert!(template.parameters.is_empty());
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
    .assert_eq(&order(&template, &ctx));

    // The first zone of the stack's region for subnets 1, the second for 2.
    let zones: Vec<String> = [
        "Pattern3PublicSubnet1",
        "Pattern3PrivateSubnet1",
        "Pattern3PublicSubnet2",
        "Pattern3PrivateSubnet2",
    ]
    .iter()
    .map(|subnet| format!("{subnet} {}", property(&template, subnet, "AvailabilityZone", &ctx)))
    .collect();
    expect![[r#"
        Pattern3PublicSubnet1 "ap-southeast-2a"
        Pattern3PrivateSubnet1 "ap-southeast-2a"
        Pattern3PublicSubnet2 "ap-southeast-2b"
        Pattern3PrivateSubnet2 "ap-southeast-2b""#]]
    .assert_eq(&zones.join("\n"));

    // The lab's quirk of private route tables tagged Public is gone.
    for table in ["Pattern3PrivateRouteTable1", "Pattern3PrivateRouteTable2"] {
        assert_eq!(
            property(&template, table, "Tags", &ctx),
            r#"[{"Key": "Network", "Value": "Private"}]"#
        );
    }

    let exports: Vec<String> =
        exports(&template, &ctx).iter().map(|(name, value)| format!("{name} = {value}")).collect();
    expect![[r#"
        pattern3-base-PrivateSubnet1 = "Pattern3PrivateSubnet1-id"
        pattern3-base-PrivateSubnet2 = "Pattern3PrivateSubnet2-id"
        pattern3-base-PublicSubnet1 = "Pattern3PublicSubnet1-id"
        pattern3-base-PublicSubnet2 = "Pattern3PublicSubnet2-id"
        pattern3-base-VpcId = "Pattern3VPC-id""#]]
    .assert_eq(&exports.join("\n"));
    let outputs: Vec<&str> = template.outputs.keys().map(String::as_str).collect();
    assert_eq!(
        outputs,
        [
            "OutputPattern3PrivateSubnet1",
            "OutputPattern3PrivateSubnet2",
            "OutputPattern3PublicSubnet1",
            "OutputPattern3PublicSubnet2",
            "OutputPattern3VPC",
            "OutputPatternStackName",
        ]
    );
}

#[test]
fn every_import_of_the_app_stack_is_an_export_of_the_base_stack() {
    let (base_template, base_ctx) = base_stack();
    let (template, ctx) = app_stack();
    let imported = imports(&template, &ctx);
    let exported: BTreeSet<String> = exports(&base_template, &base_ctx).into_keys().collect();
    let missing: Vec<&String> = imported.difference(&exported).collect();
    assert!(missing.is_empty(), "imported but not exported by the base stack: {missing:?}");
    expect![[r#"
        pattern3-base-PrivateSubnet1
        pattern3-base-PrivateSubnet2
        pattern3-base-PublicSubnet1
        pattern3-base-PublicSubnet2
        pattern3-base-VpcId"#]]
    .assert_eq(&imported.into_iter().collect::<Vec<_>>().join("\n"));

    // The group's instances go to the private subnets, the load balancer to
    // the public ones.
    assert_eq!(
        property(&template, "Pattern3ASG", "VPCZoneIdentifier", &ctx),
        r#"["Pattern3PrivateSubnet1-id", "Pattern3PrivateSubnet2-id"]"#
    );
    assert_eq!(
        property(&template, "Pattern3ALB", "Subnets", &ctx),
        r#"["Pattern3PublicSubnet1-id", "Pattern3PublicSubnet2-id"]"#
    );
}

#[test]
fn app_stack_parameters_order_policies_and_outputs() {
    let template = app();
    let values = resolve_parameters(&template, &app_parameters(), None, &BTreeSet::new()).unwrap();
    expect![[r#"{"AmazonMachineImage": "webapp/1.0.0/1", "BaselineVpcStack": "pattern3-base", "MaxNumberOfInstanceCluster": "2", "NumberOfInstanceCluster": "2"}"#]]
        .assert_eq(&format!("{values:?}"));
    // The image has no default: a stack without it is refused.
    let missing = resolve_parameters(
        &template,
        &BTreeMap::from([("BaselineVpcStack".to_owned(), BASE_STACK.to_owned())]),
        None,
        &BTreeSet::new(),
    )
    .unwrap_err();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].parameter, "AmazonMachineImage");

    let (template, ctx) = app_stack();
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
    .assert_eq(&order(&template, &ctx));

    // The lab's policies: blue/green replacement, two signals within 5 minutes.
    let asg = &template.resources["Pattern3ASG"];
    let update = asg.update_policy.as_ref().expect("Pattern3ASG has an UpdatePolicy");
    let replacing = update.replacing_update.as_ref().expect("AutoScalingReplacingUpdate");
    assert_eq!(replacing.will_replace, Setting::Given(true));
    assert!(update.rolling_update.is_none());
    let creation = asg.creation_policy.as_ref().expect("Pattern3ASG has a CreationPolicy");
    let signal = creation.resource_signal.as_ref().expect("ResourceSignal");
    assert!(matches!(signal.count, Setting::Computed(_)), "Count is the parameter");
    assert_eq!(signal.count.resolve(&ctx), Ok(2));
    assert_eq!(signal.timeout.resolve(&ctx).unwrap().seconds, 300);

    expect![[r#"{"DesiredCapacity": "2", "HealthCheckGracePeriod": 30, "HealthCheckType": "ELB", "LaunchConfigurationName": "Pattern3ASGLaunchConfig-id", "MaxSize": "2", "MinSize": "0", "Tags": [{"Key": "Name", "PropagateAtLaunch": true, "Value": "pattern3-app-AutoScalingGroupInstance"}, {"Key": "ResourceType", "PropagateAtLaunch": true, "Value": "WebServer"}], "TargetGroupARNs": ["Pattern3ALBTargetGroup-id"], "VPCZoneIdentifier": ["Pattern3PrivateSubnet1-id", "Pattern3PrivateSubnet2-id"]}"#]]
        .assert_eq(&evaluate(asg.properties.as_ref().unwrap(), &ctx).unwrap().to_string());
    // Local timings, within what the load balancer accepts.
    expect![[r#"{"HealthCheckEnabled": true, "HealthCheckIntervalSeconds": 2, "HealthCheckPath": "/", "HealthCheckPort": "traffic-port", "HealthCheckProtocol": "HTTP", "HealthCheckTimeoutSeconds": 2, "HealthyThresholdCount": 2, "Port": 80, "Protocol": "HTTP", "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}], "UnhealthyThresholdCount": 2, "VpcId": "Pattern3VPC-id"}"#]]
        .assert_eq(&evaluate(template.resources["Pattern3ALBTargetGroup"].properties.as_ref().unwrap(), &ctx).unwrap().to_string());
    // The user data is checked on its own below.
    let launch_config = &template.resources["Pattern3ASGLaunchConfig"];
    let Value::Map(mut launch) =
        evaluate(launch_config.properties.as_ref().unwrap(), &ctx).unwrap()
    else {
        panic!("properties are a map")
    };
    assert!(launch.remove("UserData").is_some());
    expect![[r#"{"EbsOptimized": "true", "IamInstanceProfile": "Pattern3Ec2InstanceProfile-id", "ImageId": "webapp/1.0.0/1", "InstanceType": "m1.large", "SecurityGroups": ["Pattern3InstanceSecurityGroup-id"]}"#]]
        .assert_eq(&Value::Map(launch).to_string());
    // No cfn-init: the image is baked.
    let metadata = launch_config.metadata.as_ref();
    assert!(metadata.is_none_or(|metadata| metadata.get("AWS::CloudFormation::Init").is_none()));

    let outputs: Vec<String> = template
        .outputs
        .values()
        .map(|output| {
            let export = output
                .export_name
                .as_ref()
                .map(|name| format!(" export {}", evaluate(name, &ctx).unwrap()))
                .unwrap_or_default();
            format!("{} = {}{export}", output.name, evaluate(&output.value, &ctx).unwrap())
        })
        .collect();
    expect![[r#"
        OutputPattern3ALB = "Pattern3ALB-id" export "pattern3-app-ALB"
        OutputPattern3ALBDNSName = "Pattern3ALB.DNSName"
        OutputPattern3ELBSecurityGroup = "Pattern3ELBSecurityGroup-id" export "pattern3-app-ELBSecurityGroup"
        OutputPattern3InstanceSecurityGroup = "Pattern3InstanceSecurityGroup-id" export "pattern3-app-InstanceSecurityGroup""#]]
    .assert_eq(&outputs.join("\n"));
}

#[test]
fn user_data_starts_apache_waits_for_the_page_and_signals_the_group() {
    let (template, ctx) = app_stack();
    let user_data = template.resources["Pattern3ASGLaunchConfig"].property("UserData").unwrap();
    assert!(matches!(user_data.kind, ExprKind::Base64(_)));
    let Value::String(encoded) = evaluate(user_data, &ctx).unwrap() else {
        panic!("user data is a string")
    };
    let script = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    expect![[r#"
        #!/bin/bash
        apache2ctl start
        timeout 30 bash -c 'until curl -fsS -o /dev/null http://127.0.0.1/; do sleep 1; done'
        /opt/aws/bin/cfn-signal -e $? --stack pattern3-app --resource Pattern3ASG --region ap-southeast-2
    "#]]
    .assert_eq(&String::from_utf8(script).unwrap());
}

/// What a stack request checks before anything is made finds nothing in
/// either template: no resource exists yet, so `Ref`s and attributes of
/// resources are not known, and the region's zones are.
#[test]
fn both_templates_pass_the_checks_a_request_makes_before_anything_is_made() {
    for (template, name, given) in
        [(base(), BASE_STACK, BTreeMap::new()), (app(), APP_STACK, app_parameters())]
    {
        let mut ctx = stack(&template, name, &given);
        ctx.resource_refs.clear();
        ctx.resource_attributes.clear();
        ctx.availability_zones.insert(String::new(), ctx.availability_zones[REGION].clone());
        ctx.conditions = evaluate_conditions(&template, &ctx).unwrap();
        let problems = check_values(name, &template, &ctx);
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }
}
