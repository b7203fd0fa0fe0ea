//! Tests of the CloudFormation frontend: one `check` reads a value written
//! in YAML or JSON and evaluates it against a fixed stack, and renders the
//! value, or every diagnostic, or the evaluation error, as text.

use std::collections::{BTreeMap, BTreeSet};

use expect_test::{Expect, expect};

use super::*;
use crate::cloudformation::intrinsic::ExprReader;
use crate::diagnostic::Reporter;
use crate::source::SourceFile;
use crate::yaml::parse_yaml;

/// A stack in ap-southeast-2 with a few of everything.
fn stack() -> StaticContext {
    let mut ctx = StaticContext::default();
    ctx.parameters.insert("Env".into(), Value::String("prod".into()));
    ctx.parameters.insert("Subnets".into(), Value::strings(["subnet-1", "subnet-2"]));
    ctx.parameters.insert("Index".into(), Value::String("1".into()));
    for (name, value) in [
        ("AWS::Region", "ap-southeast-2"),
        ("AWS::StackName", "app"),
        ("AWS::AccountId", "123456789012"),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
    ] {
        ctx.pseudo_parameters.insert(name.into(), Value::String(value.into()));
    }
    ctx.conditions.insert("IsProd".into(), true);
    ctx.conditions.insert("IsDev".into(), false);
    let mut region = BTreeMap::new();
    region.insert("AMI".to_owned(), Value::String("ami-123".into()));
    region.insert("Zones".to_owned(), Value::strings(["a", "b"]));
    ctx.mappings.entry("RegionMap".into()).or_default().insert("ap-southeast-2".into(), region);
    ctx.resource_refs.insert("Bucket".into(), Value::String("app-bucket-1".into()));
    ctx.resource_attributes
        .insert(("Bucket".into(), "Arn".into()), Value::String("arn:aws:s3:::app-bucket-1".into()));
    ctx.imports.insert("base-VpcId".into(), Value::String("vpc-1".into()));
    ctx.availability_zones
        .insert("ap-southeast-2".into(), vec!["ap-southeast-2a".into(), "ap-southeast-2b".into()]);
    ctx
}

fn read(text: &str) -> Result<Expr, String> {
    let file = SourceFile::new("t.yaml", text);
    let root = parse_yaml(&file).map_err(|diagnostics| diagnostics.to_string())?;
    let mut reader = ExprReader::new(Reporter::new("t.yaml"), text);
    let expr = reader.expr(&root);
    reader.reporter.finish_option(expr).map_err(|diagnostics| diagnostics.to_string())
}

fn check(text: &str, expect: Expect) {
    let rendered = match read(text) {
        Err(diagnostics) => diagnostics,
        Ok(expr) => match evaluate(&expr, &stack()) {
            Ok(value) => value.to_string(),
            Err(error) => format!("evaluation error: {error}"),
        },
    };
    expect.assert_eq(&rendered);
}

#[test]
fn literals() {
    check(
        "{a: 1, b: '1', c: true, d: [x, 1.50], e: null}",
        expect![[r#"{"a": 1, "b": "1", "c": true, "d": ["x", 1.50], "e": null}"#]],
    );
}

#[test]
fn ref_() {
    check("!Ref Env", expect![[r#""prod""#]]);
    check("{Ref: Subnets}", expect![[r#"["subnet-1", "subnet-2"]"#]]);
    check("!Ref Bucket", expect![[r#""app-bucket-1""#]]);
    check("!Ref AWS::Region", expect![[r#""ap-southeast-2""#]]);
    check(
        "!Ref Nothing",
        expect![
            "evaluation error: 1:1: no value for `Nothing`; expected a parameter, resource or pseudo parameter"
        ],
    );
    check(
        "!Ref [a]",
        expect!["t.yaml:1:1: error: expected a name as the argument of Ref, found a sequence"],
    );
    check(
        "{Ref: !Sub x}",
        expect![[
            r#"t.yaml:1:7: error: expected a name as the argument of Ref, found the string "x" tagged !Sub"#
        ]],
    );
}

#[test]
fn no_value_removes_properties_and_items() {
    check(
        "{a: !Ref AWS::NoValue, b: [x, !If [IsDev, y, !Ref AWS::NoValue]], c: !If [IsProd, kept, gone]}",
        expect![[r#"{"b": ["x"], "c": "kept"}"#]],
    );
    check(
        "!Join ['', [a, !Sub '${AWS::NoValue}']]",
        expect![
            "evaluation error: 1:22: found AWS::NoValue in Fn::Sub; it can only remove a property or list item"
        ],
    );
}

#[test]
fn get_att() {
    check("!GetAtt Bucket.Arn", expect![[r#""arn:aws:s3:::app-bucket-1""#]]);
    check("!GetAtt [Bucket, Arn]", expect![[r#""arn:aws:s3:::app-bucket-1""#]]);
    check(r#"{"Fn::GetAtt": ["Bucket", "Arn"]}"#, expect![[r#""arn:aws:s3:::app-bucket-1""#]]);
    check(
        "!GetAtt Bucket.DomainName",
        expect!["evaluation error: 1:1: no attribute `DomainName` of resource `Bucket`"],
    );
    check(
        "!GetAtt Bucket",
        expect![[
            r#"t.yaml:1:1: error: expected `Resource.Attribute` or a list [resource, attribute] as the argument of Fn::GetAtt, found the string "Bucket""#
        ]],
    );
    check(
        "!GetAtt [Bucket]",
        expect![
            "t.yaml:1:1: error: expected `Resource.Attribute` or a list [resource, attribute] as the argument of Fn::GetAtt, found a sequence"
        ],
    );
}

#[test]
fn sub() {
    check(
        "!Sub 'arn:${AWS::Partition}:s3:::${Bucket}/${Env}/${Bucket.Arn} ${!Literal} $x'",
        expect![[r#""arn:aws:s3:::app-bucket-1/prod/arn:aws:s3:::app-bucket-1 ${Literal} $x""#]],
    );
    check(
        "!Sub ['${Greeting}, ${Env}', {Greeting: !Join [' ', [hello, there]]}]",
        expect![[r#""hello there, prod""#]],
    );
    check(r#"{"Fn::Sub": "${AWS::StackName}-x"}"#, expect![[r#""app-x""#]]);
    check(
        "!Sub '${Missing}'",
        expect![
            "evaluation error: 1:7: no value for `Missing`; expected a parameter, resource or pseudo parameter"
        ],
    );
    check(
        "!Sub 'x-${Subnets}'",
        expect![[r#"evaluation error: 1:9: found a list in Fn::Sub; expected a string"#]],
    );
    check(
        "!Sub 'a ${unterminated'",
        expect![
            "t.yaml:1:9: error: found `${` without a closing `}` in Fn::Sub; expected `${Name}`, or `${!` for a literal `${`"
        ],
    );
    check(
        "!Sub 'a ${}'",
        expect![
            "t.yaml:1:9: error: found the variable `${}` in Fn::Sub; expected a parameter, resource, `Resource.Attribute` or pseudo parameter name"
        ],
    );
    check(
        "!Sub [a, b, c]",
        expect![
            "t.yaml:1:1: error: expected a string or a list [string, {variables}] as the argument of Fn::Sub, found a sequence"
        ],
    );
    check(
        "!Sub [x, [a]]",
        expect![
            "t.yaml:1:10: error: expected a mapping of variables as the second argument of Fn::Sub, found a sequence"
        ],
    );
}

#[test]
fn import_value() {
    check("!ImportValue base-VpcId", expect![[r#""vpc-1""#]]);
    check("{'Fn::ImportValue': !Sub 'base-VpcId'}", expect![[r#""vpc-1""#]]);
    check(
        "!ImportValue {'Fn::Sub': '${Env}-VpcId'}",
        expect![
            "evaluation error: 1:1: no export named `prod-VpcId` to import; expected a name exported by another stack"
        ],
    );
}

#[test]
fn join() {
    check("!Join [',', [a, !Ref Env, 3]]", expect![[r#""a,prod,3""#]]);
    check("!Join ['-', !Ref Subnets]", expect![[r#""subnet-1-subnet-2""#]]);
    check("!Join ['', [!Sub '${Env}', x]]", expect![[r#""prodx""#]]);
    check(
        "!Join [',', !Ref Env]",
        expect![[
            r#"evaluation error: 1:13: found the string "prod" in Fn::Join; expected a list of strings"#
        ]],
    );
    check(
        "!Join [',']",
        expect!["t.yaml:1:1: error: found 1 arguments to Fn::Join; expected 2: [delimiter, list]"],
    );
    check(
        "!Join [[x], [a]]",
        expect![
            "t.yaml:1:8: error: expected a string as the delimiter of Fn::Join, found a sequence"
        ],
    );
}

#[test]
fn select() {
    check("!Select [1, [a, b, c]]", expect![[r#""b""#]]);
    check("!Select [!Ref Index, !Ref Subnets]", expect![[r#""subnet-2""#]]);
    check("!Select ['0', !GetAZs '']", expect![[r#""ap-southeast-2a""#]]);
    check(
        "!Select [3, [a, b]]",
        expect![
            "evaluation error: 1:1: found the index 3 in Fn::Select; expected an index below the list's length 2"
        ],
    );
    check(
        "!Select [x, [a, b]]",
        expect![[
            r#"evaluation error: 1:10: found the string "x" in Fn::Select; expected a whole number from 0"#
        ]],
    );
    check(
        "!Select [0, !Ref Env]",
        expect![[
            r#"evaluation error: 1:13: found the string "prod" in Fn::Select; expected a list"#
        ]],
    );
}

#[test]
fn split() {
    check("!Split [',', 'a,b,,c']", expect![[r#"["a", "b", "", "c"]"#]]);
    check("!Select [1, !Split ['-', !Sub '${AWS::StackName}-blue']]", expect![[r#""blue""#]]);
    check(
        "!Split ['', abc]",
        expect![
            "t.yaml:1:9: error: found an empty delimiter in Fn::Split; expected at least one character"
        ],
    );
    check(
        "!Split [',', !Ref Subnets]",
        expect!["evaluation error: 1:14: found a list in Fn::Split; expected a string"],
    );
}

#[test]
fn conditions() {
    check("!If [IsProd, big, small]", expect![[r#""big""#]]);
    check("!If [IsDev, big, small]", expect![[r#""small""#]]);
    check(
        "!If [Unknown, big, small]",
        expect!["evaluation error: 1:6: no truth value for the condition `Unknown`"],
    );
    check(
        "!If [IsDev, big]",
        expect![
            "t.yaml:1:1: error: found 2 arguments to Fn::If; expected 3: [condition name, value if true, value if false]"
        ],
    );
    check("!Equals [!Ref Env, prod]", expect!["true"]);
    check("!Equals [1, '1']", expect!["true"]);
    check("!Not [!Equals [!Ref Env, prod]]", expect!["false"]);
    check("!And [!Condition IsProd, {Condition: IsDev}]", expect!["false"]);
    check("!Or [{Condition: IsProd}, !Equals [a, b]]", expect!["true"]);
    check(
        r#"{"Fn::And": [{"Condition": "IsProd"}, {"Fn::Not": [{"Condition": "IsDev"}]}]}"#,
        expect!["true"],
    );
    check(
        "!And [!Condition IsProd]",
        expect!["t.yaml:1:1: error: found 1 conditions in Fn::And; expected 2 to 10"],
    );
    check(
        "!Not [prod]",
        expect![[
            r#"evaluation error: 1:7: found the string "prod" in Fn::Not; expected a condition"#
        ]],
    );
    check(
        "!Not !Condition IsProd",
        expect!["t.yaml:1:6: error: invalid YAML: did not find expected <document start>"],
    );
}

#[test]
fn base64() {
    check("!Base64 hello", expect![[r#""aGVsbG8=""#]]);
    check(
        "{'Fn::Base64': !Sub '#!/bin/bash\n echo ${Env}'}",
        expect![[r#""IyEvYmluL2Jhc2ggZWNobyBwcm9k""#]],
    );
    check(
        "!Base64 [a]",
        expect!["evaluation error: 1:1: found a list in Fn::Base64; expected a string"],
    );
}

#[test]
fn get_azs() {
    check("!GetAZs ''", expect![[r#"["ap-southeast-2a", "ap-southeast-2b"]"#]]);
    check(
        "{'Fn::GetAZs': !Ref AWS::Region}",
        expect![[r#"["ap-southeast-2a", "ap-southeast-2b"]"#]],
    );
    // Zones exist locally for the stack's own region only: another region's
    // are an error, not a silent empty list.
    check(
        "!GetAZs us-east-1",
        expect![[
            r#"evaluation error: 1:1: found the region `us-east-1` in Fn::GetAZs; expected the stack's region `ap-southeast-2` or "": availability zones exist locally for the stack's region only"#
        ]],
    );
}

#[test]
fn cidr() {
    // The User Guide's example.
    check(
        "!Cidr ['192.168.0.0/24', 6, 5]",
        expect![[
            r#"["192.168.0.0/27", "192.168.0.32/27", "192.168.0.64/27", "192.168.0.96/27", "192.168.0.128/27", "192.168.0.160/27"]"#
        ]],
    );
    check(
        r#"{"Fn::Cidr": ["10.0.0.0/16", "2", "8"]}"#,
        expect![[r#"["10.0.0.0/24", "10.0.1.0/24"]"#]],
    );
    // Host bits of the block are ignored; IPv6 too.
    check("!Cidr [10.1.2.3/16, 1, 12]", expect![[r#"["10.1.0.0/20"]"#]]);
    check("!Cidr ['2001:db8::/56', 2, 64]", expect![[r#"["2001:db8::/64", "2001:db8:0:1::/64"]"#]]);
    check(
        "!Select [1, !Cidr [!Join ['', ['10.0.0.0/', '16']], 3, 8]]",
        expect![[r#""10.0.1.0/24""#]],
    );
    check(
        "!Cidr [10.0.0.0/24, 3, 7]",
        expect![[
            r#"evaluation error: 1:21: found "3" in Fn::Cidr; expected at most 2: a /24 holds 2 blocks of /25"#
        ]],
    );
    check(
        "!Cidr [10.0.0.0/24, 1, 9]",
        expect![[
            r#"evaluation error: 1:24: found "9" in Fn::Cidr; expected at most 8 host bits: blocks of /23 do not fit in a /24"#
        ]],
    );
    check(
        "!Cidr [10.0.0.0/24, 0, 4]",
        expect![[
            r#"evaluation error: 1:21: found "0" in Fn::Cidr; expected a count from 1 to 256"#
        ]],
    );
    check(
        "!Cidr [10.0.0.0, 1, 4]",
        expect![[
            r#"evaluation error: 1:8: found "10.0.0.0" in Fn::Cidr; expected an address block like 10.0.0.0/16 or 2001:db8::/56"#
        ]],
    );
    check(
        "!Cidr [10.0.0.0/16, 1]",
        expect![
            "t.yaml:1:1: error: found 2 arguments to Fn::Cidr; expected 3: [ip block, count, cidr bits]"
        ],
    );
}

#[test]
fn get_att_of_an_attribute_a_parameter_names() {
    let rendered = |text: &str, attribute: &str| {
        let mut ctx = stack();
        ctx.parameters.insert("Attribute".into(), Value::String(attribute.into()));
        match evaluate(&read(text).unwrap(), &ctx) {
            Ok(value) => value.to_string(),
            Err(error) => error.to_string(),
        }
    };
    assert_eq!(
        rendered("!GetAtt [Bucket, !Ref Attribute]", "Arn"),
        r#""arn:aws:s3:::app-bucket-1""#
    );
    assert_eq!(
        rendered(r#"{"Fn::GetAtt": ["Bucket", {"Ref": "Attribute"}]}"#, "Arn"),
        r#""arn:aws:s3:::app-bucket-1""#
    );
    assert_eq!(
        rendered("!GetAtt [Bucket, !Ref Attribute]", "Nope"),
        "1:1: no attribute `Nope` of resource `Bucket`"
    );
    check(
        "!GetAtt [Bucket, !Sub x]",
        expect![[
            r#"t.yaml:1:18: error: expected a name as the argument of Fn::GetAtt, found the string "x" tagged !Sub"#
        ]],
    );
}

#[test]
fn no_echo_values_are_masked_in_every_evaluation_error() {
    let template = template(
        "
Parameters:
  Secret: {Type: String, NoEcho: true}
  Keys: {Type: CommaDelimitedList, NoEcho: true}
Mappings:
  M: {k1: {Name: one}}
Resources:
  Group: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d}}
",
    )
    .unwrap();
    let values = BTreeMap::from([
        ("Secret".to_owned(), "TopSecretValue".to_owned()),
        ("Keys".to_owned(), "alpha,beta".to_owned()),
    ]);
    let ctx = StaticContext::for_template(&template, &values);
    let errors: Vec<String> = [
        "!FindInMap [M, !Ref Secret, Name]",
        "!FindInMap [M, k1, !Sub 'x-${Secret}']",
        "!Select [3, !Split [',', !Ref Secret]]",
        "!Join ['', !Ref Secret]",
        "!Select [0, !Select [1, !Ref Keys]]",
        "{'Fn::ImportValue': !Ref Secret}",
        "{'Fn::GetAZs': !Ref Secret}",
    ]
    .iter()
    .map(|text| evaluate(&read(text).unwrap(), &ctx).unwrap_err().to_string())
    .collect();
    expect![[r#"
        1:1: no value for [****][Name] in the mapping `M`
        1:1: no value for [k1][x-****] in the mapping `M`
        1:1: found the index 3 in Fn::Select; expected an index below the list's length 1
        1:12: found the string "****" in Fn::Join; expected a list of strings
        1:13: found the string "****" in Fn::Select; expected a list
        1:1: no export named `****` to import; expected a name exported by another stack
        1:16: found the region `****` in Fn::GetAZs; expected the stack's region or "": availability zones exist locally for the stack's region only"#]]
    .assert_eq(&errors.join("\n"));
    assert!(errors.iter().all(|error| !error.contains("TopSecret") && !error.contains("beta")));
    // Policy settings made from a NoEcho parameter are masked too.
    let template = template_with_setting();
    let ctx = StaticContext::for_template(
        &template,
        &BTreeMap::from([("Count".to_owned(), "many".to_owned())]),
    );
    let signal = template.resources["Asg"].creation_policy.as_ref().unwrap();
    let count = &signal.resource_signal.as_ref().unwrap().count;
    assert_eq!(
        count.resolve(&ctx).unwrap_err().to_string(),
        r#"9:31: found "****"; expected a whole number from 0"#
    );
}

fn template_with_setting() -> Template {
    template(
        "
Parameters:
  Count: {Type: String, NoEcho: true}
Resources:
  Asg:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties: {MinSize: 1, MaxSize: 2}
    CreationPolicy:
      ResourceSignal: {Count: !Ref Count, Timeout: PT5M}
",
    )
    .unwrap()
}

#[test]
fn find_in_map() {
    check("!FindInMap [RegionMap, !Ref AWS::Region, AMI]", expect![[r#""ami-123""#]]);
    check("!FindInMap [RegionMap, ap-southeast-2, Zones]", expect![[r#"["a", "b"]"#]]);
    check(
        "!FindInMap [RegionMap, us-east-1, AMI]",
        expect!["evaluation error: 1:1: no value for [us-east-1][AMI] in the mapping `RegionMap`"],
    );
    check(
        "!FindInMap [RegionMap, AMI]",
        expect![
            "t.yaml:1:1: error: found 2 arguments to Fn::FindInMap; expected 3: [map name, top-level key, second-level key]"
        ],
    );
}

#[test]
fn unknown_functions() {
    check(
        "!Length [a, b, c]",
        expect![
            "t.yaml:1:1: error: found the unknown intrinsic function tag !Length; expected one of !Ref !Base64 !Cidr !FindInMap !GetAZs !GetAtt !ImportValue !Join !Select !Split !Sub !If !Equals !Not !And !Or !Condition"
        ],
    );
    check(
        "{a: [{'Fn::Length': [a]}]}",
        expect![
            "t.yaml:1:7: error: found the unknown intrinsic function `Fn::Length`; expected one of Ref, Fn::Base64, Fn::Cidr, Fn::FindInMap, Fn::GetAZs, Fn::GetAtt, Fn::ImportValue, Fn::Join, Fn::Select, Fn::Split, Fn::Sub, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition"
        ],
    );
    // Outside conditions, `Condition` is an ordinary key.
    check("{Condition: IsProd}", expect![[r#"{"Condition": "IsProd"}"#]]);
    // Rule functions belong to Rules; those that ask AWS about the account
    // cannot be answered locally.
    check(
        "!Contains [[a], a]",
        expect![
            "t.yaml:1:1: error: found Fn::Contains outside the Rules section; expected rule functions only in the assertions and conditions of Rules"
        ],
    );
    check(
        "{'Fn::ValueOf': [P, Tags]}",
        expect![
            "t.yaml:1:2: error: found Fn::ValueOf, which asks AWS about the account's resources: local stacks cannot answer it; expected Fn::Contains, Fn::EachMemberEquals, Fn::EachMemberIn, Fn::Equals, Fn::And, Fn::Or or Fn::Not"
        ],
    );
}

#[test]
fn iso_durations() {
    let cases =
        ["PT5M", "PT1H30M", "PT45S", "P1DT1S", "PT0S", "PT", "P", "5M", "PT5X", "PT1M5H", "PT-1S"];
    let parsed: Vec<String> =
        cases.iter().map(|case| format!("{case}={:?}", parse_iso_duration(case))).collect();
    expect![[r#"PT5M=Some(300) PT1H30M=Some(5400) PT45S=Some(45) P1DT1S=Some(86401) PT0S=Some(0) PT=None P=None 5M=None PT5X=None PT1M5H=None PT-1S=None"#]]
        .assert_eq(&parsed.join(" "));
    assert_eq!(IsoDuration { seconds: 5400 }.to_string(), "PT1H30M");
}

fn template(text: &str) -> Result<Template, String> {
    parse_template(&SourceFile::new("t.yaml", text)).map_err(|diagnostics| diagnostics.to_string())
}

/// Parses and validates `text` as a whole template.
fn check_template(text: &str, expect: Expect) {
    let rendered = match template(text) {
        Ok(template) => format!("ok: {} resources", template.resources.len()),
        Err(diagnostics) => diagnostics,
    };
    expect.assert_eq(&rendered);
}

#[test]
fn a_lenient_parse_gives_what_could_be_read_with_every_diagnostic() {
    let text = "
Bogus: 1
Parameters:
  Env: {Type: String, AllowedValues: [dev]}
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16, Bogus: x}
  Bucket:
    Type: AWS::S3::Bucket
";
    let (template, diagnostics) = parse_template_lenient(&SourceFile::new("t.yaml", text));
    let template = template.expect("the readable parts");
    assert_eq!(template.parameters.keys().collect::<Vec<_>>(), ["Env"]);
    let types: Vec<&str> =
        template.resources.values().map(|r| r.resource_type.value.as_str()).collect();
    assert!(types.contains(&"AWS::S3::Bucket"), "{types:?}");
    let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(rendered.len(), 2, "{rendered:?}");
    assert!(rendered[0].starts_with("t.yaml:2:1: error:"), "{rendered:?}");
    assert!(rendered[1].starts_with("t.yaml:8:42: error:"), "{rendered:?}");
    let (nothing, diagnostics) = parse_template_lenient(&SourceFile::new("t.yaml", "a: [\n"));
    assert!(nothing.is_none());
    assert!(!diagnostics.is_empty());
}

#[test]
fn a_runner_of_fewer_types_is_named_once_per_type_it_does_not_run() {
    let text = "
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Bucket:
    Type: AWS::S3::Bucket
    Properties: {Bogus: x}
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
";
    let runner = Runner { name: "local stacks", types: &["AWS::EC2::VPC", "AWS::EC2::Subnet"] };
    let (template, diagnostics) =
        parse_template_lenient_for(&SourceFile::new("t.yaml", text), &runner);
    assert_eq!(template.expect("readable").resources.len(), 3);
    let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    expect![[r#"
        t.yaml:4:11: error: found the resource type `AWS::SQS::Queue`, which local stacks do not run; expected one of AWS::EC2::Subnet, AWS::EC2::VPC
        t.yaml:6:11: error: found the resource type `AWS::S3::Bucket`, which local stacks do not run; expected one of AWS::EC2::Subnet, AWS::EC2::VPC
        t.yaml:7:18: error: found the property `Bogus`, which AWS::S3::Bucket does not have; expected one of AbacStatus, AccelerateConfiguration, AccessControl, AnalyticsConfigurations, BucketEncryption, BucketName, BucketNamePrefix, BucketNamespace, CorsConfiguration, IntelligentTieringConfigurations, InventoryConfigurations, LifecycleConfiguration, LoggingConfiguration, MetadataConfiguration, MetadataTableConfiguration, MetricsConfigurations, NotificationConfiguration, ObjectLockConfiguration, ObjectLockEnabled, OwnershipControls, PublicAccessBlockConfiguration, ReplicationConfiguration, Tags, VersioningConfiguration, WebsiteConfiguration"#]]
    .assert_eq(&rendered.join("\n"));
    // Without a runner, the table's types are the supported ones.
    let (_, diagnostics) = parse_template_lenient(&SourceFile::new("t.yaml", text));
    let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(rendered.len(), 2, "{rendered:?}");
    assert!(rendered[0].contains("unsupported resource type `AWS::SQS::Queue`"), "{rendered:?}");
    assert!(rendered[1].contains("`Bogus`, which AWS::S3::Bucket does not have"), "{rendered:?}");
}

#[test]
fn references_to_nothing() {
    check_template(
        "
Parameters:
  Env: {Type: String}
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    DependsOn: [Buckit, Bucket]
    Properties:
      BucketName: !Sub '${Enf}-${Bucket.Arn}-${Bucket.Nope}-${AWS::Regio}'
      Tags: [{Key: a, Value: !Ref Buckt}, {Key: b, Value: !GetAtt Env.Arn}]
Outputs:
  Out:
    Value: !If [Nope, a, !FindInMap [Nomap, a, b]]
    Condition: AlsoNope
  Imported:
    Value: !ImportValue {'Fn::Sub': '${Env}-${Bucket}'}
",
        expect![[r#"
            t.yaml:5:3: error: found a circular dependency between resources: Bucket -> Bucket
            t.yaml:7:17: error: found DependsOn `Buckit`, which is not a resource of this template; expected a resource (did you mean `Bucket`?)
            t.yaml:7:25: error: found `Bucket` depending on itself; expected another resource
            t.yaml:9:25: error: found a reference to `Enf`, which is not declared; expected a parameter, a resource or a pseudo parameter (did you mean `Env`?)
            t.yaml:9:46: error: found the attribute `Nope` of `Bucket` (AWS::S3::Bucket); expected one of Arn, DomainName, DualStackDomainName, RegionalDomainName, WebsiteURL
            t.yaml:9:61: error: found a reference to `AWS::Regio`, which is not declared; expected a parameter, a resource or a pseudo parameter (pseudo parameters: AWS::AccountId, AWS::NotificationARNs, AWS::NoValue, AWS::Partition, AWS::Region, AWS::StackId, AWS::StackName, AWS::URLSuffix)
            t.yaml:10:30: error: found a reference to `Buckt`, which is not declared; expected a parameter, a resource or a pseudo parameter (did you mean `Bucket`?)
            t.yaml:10:59: error: found the attribute `Env.Arn` of `Env`, which is not a resource of this template; expected a resource (it is a parameter)
            t.yaml:13:17: error: found the condition `Nope`, which is not declared; expected a condition of the Conditions section, which is empty
            t.yaml:13:38: error: found the mapping `Nomap`, which is not declared; expected a mapping of the Mappings section, which is empty
            t.yaml:14:16: error: found the condition `AlsoNope`, which is not declared; expected a condition of the Conditions section, which is empty
            t.yaml:16:45: error: found the resource `Bucket` in the name of Fn::ImportValue; expected a name made of parameters and pseudo parameters only"#]],
    );
}

#[test]
fn circular_dependencies() {
    check_template(
        "
Resources:
  A:
    Type: AWS::EC2::VPC
    DependsOn: C
  B:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref A}
  C:
    Type: AWS::EC2::RouteTable
    Properties: {VpcId: !Sub '${B.VpcId}'}
  D:
    Type: AWS::EC2::InternetGateway
Conditions:
  X: !Not [!Condition Y]
  Y: !And [!Condition X, !Equals [a, a]]
  Z: !Equals [!Ref A, a]
",
        expect![[r#"
            t.yaml:3:3: error: found a circular dependency between resources: A -> C -> B -> A
            t.yaml:15:3: error: found a circular dependency between conditions: X -> Y -> X
            t.yaml:17:15: error: found a reference to the resource `A` in a condition; expected a parameter or pseudo parameter"#]],
    );
}

#[test]
fn unsupported_types_and_properties() {
    check_template(
        "
Resources:
  Instance:
    Type: AWS::EC2::Instance
  Group:
    Type: AWS::EC2::SecurityGroup
    Properties:
      Description: x
      groupName: y
    CreationPolicy: {ResourceSignal: {Count: 1}}
  Asg:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties: {MinSize: 1, MaxSize: 2}
    UpdatePolicy:
      AutoScalingRollingUpdate:
        MaxBatchSize: 0
        PauseTime: PT2H
        MinSuccessfulInstancesPercent: 101
        SuspendProcesses: [Launch, Dance]
        WaitOnResourceSignals: maybe
    CreationPolicy:
      ResourceSignal: {Count: {Two: 2}, Timeout: 5 minutes}
",
        expect![[r#"
            t.yaml:4:11: error: found the unsupported resource type `AWS::EC2::Instance`; expected one of the supported types: AWS::AutoScaling::AutoScalingGroup, AWS::AutoScaling::LaunchConfiguration, AWS::EC2::EIP, AWS::EC2::InternetGateway, AWS::EC2::LaunchTemplate, AWS::EC2::NatGateway, AWS::EC2::Route, AWS::EC2::RouteTable, AWS::EC2::SecurityGroup, AWS::EC2::Subnet, AWS::EC2::SubnetRouteTableAssociation, AWS::EC2::VPC, AWS::EC2::VPCGatewayAttachment, AWS::ElasticLoadBalancingV2::Listener, AWS::ElasticLoadBalancingV2::LoadBalancer, AWS::ElasticLoadBalancingV2::TargetGroup, AWS::IAM::InstanceProfile, AWS::IAM::Policy, AWS::IAM::Role, AWS::ImageBuilder::Component, AWS::ImageBuilder::ImagePipeline, AWS::ImageBuilder::ImageRecipe, AWS::ImageBuilder::InfrastructureConfiguration, AWS::S3::Bucket, AWS::SSM::Document
            t.yaml:8:7: error: found the property `Description`, which AWS::EC2::SecurityGroup does not have; expected one of GroupDescription, GroupName, SecurityGroupEgress, SecurityGroupIngress, Tags, VpcId
            t.yaml:8:7: error: missing the required property `GroupDescription` of AWS::EC2::SecurityGroup
            t.yaml:9:7: error: found the property `groupName`, which AWS::EC2::SecurityGroup does not have; did you mean `GroupName`? expected one of GroupDescription, GroupName, SecurityGroupEgress, SecurityGroupIngress, Tags, VpcId
            t.yaml:10:21: error: found a CreationPolicy on AWS::EC2::SecurityGroup; expected it only on AWS::AutoScaling::AutoScalingGroup
            t.yaml:16:23: error: found "0"; expected a batch size of at least 1
            t.yaml:17:20: error: found "PT2H"; expected a pause of at most PT1H
            t.yaml:18:40: error: found "101"; expected a percentage from 0 to 100
            t.yaml:19:36: error: found the scaling process `Dance`; expected one of AZRebalance, AddToLoadBalancer, AlarmNotification, HealthCheck, InstanceRefresh, Launch, ReplaceUnhealthy, ScheduledActions, Terminate
            t.yaml:20:32: error: found "maybe"; expected a boolean (true or false)
            t.yaml:22:31: error: expected a single value or an intrinsic function, found a mapping
            t.yaml:22:50: error: found "5 minutes"; expected an ISO 8601 duration like PT5M, PT1H30M or PT45S"#]],
    );
}

#[test]
fn malformed_sections() {
    check_template(
        "
AWSTemplateFormatVersion: 2011-01-01
Transform: AWS::Serverless-2016-10-31
Parameters:
  Size: {Type: Integer, Default: 3}
  Port: {Type: Number, Default: 99999, MaxValue: 65535, MinLength: 1}
  Name: {Type: String, AllowedPattern: '[a-z', AllowedValues: []}
  Env: {Type: String, Default: qa, AllowedValues: [dev, prod]}
  Bad-Name: {Type: String}
Mappings:
  M: {top: {second: !Ref Port}}
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    DeletionPolicy: Keep
    Metadata: !Length x
    Properties: [a]
Outputs:
  O: {Description: x}
",
        expect![[r#"
            t.yaml:2:27: error: found the format version "2011-01-01"; expected "2010-09-09"
            t.yaml:3:1: error: found key `Transform`, which is not supported: macros and transforms are not supported; expand them first
            t.yaml:5:16: error: found the parameter type "Integer"; expected String, Number, List<Number>, CommaDelimitedList, an AWS-specific type like AWS::EC2::VPC::Id or List<AWS::EC2::Subnet::Id>, or AWS::SSM::Parameter::Value<...>
            t.yaml:6:33: error: the default value does not fit: found "99999"; expected at most 65535
            t.yaml:6:68: error: found MinLength on a Number parameter; expected it only on parameters that are not numbers
            t.yaml:7:40: error: found the pattern "[a-z", which is not a valid regular expression (error: unclosed character class); expected a valid one
            t.yaml:7:63: error: found no allowed values; expected at least one
            t.yaml:8:32: error: the default value does not fit: found "qa"; expected one of the allowed values "dev", "prod"
            t.yaml:9:3: error: found the name `Bad-Name`; expected a name of letters and digits only
            t.yaml:11:21: error: found an intrinsic function in Mappings; expected a string, a number or a list of them
            t.yaml:15:21: error: found the policy "Keep"; expected one of Delete, Retain, RetainExceptOnCreate, Snapshot
            t.yaml:16:15: error: found the unknown intrinsic function tag !Length; expected one of !Ref !Base64 !Cidr !FindInMap !GetAZs !GetAtt !ImportValue !Join !Select !Split !Sub !If !Equals !Not !And !Or !Condition
            t.yaml:19:6: error: missing required key `Value`"#]],
    );
}

#[test]
fn json_template() {
    let text = r#"{
  "AWSTemplateFormatVersion": "2010-09-09",
  "Parameters": {"Env": {"Type": "String", "AllowedValues": ["dev", "prod"], "Default": "dev"}},
  "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
  "Resources": {
    "Logs": {
      "Type": "AWS::S3::Bucket",
      "Condition": "IsProd",
      "Properties": {"BucketName": {"Fn::Join": ["-", [{"Ref": "AWS::StackName"}, "logs"]]}}
    },
    "Role": {
      "Type": "AWS::IAM::Role",
      "Properties": {
        "AssumeRolePolicyDocument": {"Statement": []},
        "Policies": {"Fn::If": ["IsProd", [{"PolicyName": "logs", "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${Logs.Arn}/*"}}]}}], {"Ref": "AWS::NoValue"}]}
      }
    }
  },
  "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["Role", "Arn"]}, "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-Role"}}}}
}"#;
    let template = template(text).unwrap();
    let mut given = BTreeMap::new();
    let values = resolve_parameters(&template, &given, None, &BTreeSet::new()).unwrap();
    assert_eq!(values["Env"], "dev");
    let mut ctx = StaticContext::for_template(&template, &values);
    let conditions = evaluate_conditions(&template, &ctx).unwrap();
    assert!(!conditions["IsProd"]);
    let order = dependency_order(&template, &conditions).unwrap();
    assert_eq!(order, vec![ResourceName::from("Role")]);
    ctx.conditions = conditions;
    let role = evaluate(template.resources["Role"].properties.as_ref().unwrap(), &ctx).unwrap();
    expect![[r#"{"AssumeRolePolicyDocument": {"Statement": []}}"#]].assert_eq(&role.to_string());

    given.insert("Env".to_owned(), "prod".to_owned());
    let values = resolve_parameters(&template, &given, None, &BTreeSet::new()).unwrap();
    let ctx = StaticContext::for_template(&template, &values);
    let conditions = evaluate_conditions(&template, &ctx).unwrap();
    let order = dependency_order(&template, &conditions).unwrap();
    assert_eq!(order, vec![ResourceName::from("Logs"), ResourceName::from("Role")]);
}

#[test]
fn parameters() {
    let template = template(
        "
Parameters:
  Env: {Type: String, AllowedValues: [dev, prod], Default: dev}
  Count: {Type: Number, MinValue: 1, MaxValue: 4, ConstraintDescription: one to four web servers}
  Name: {Type: String, AllowedPattern: '[a-z]+', MinLength: 2, MaxLength: 5}
  Secret: {Type: String, NoEcho: true, AllowedPattern: '[0-9]+'}
  Ports: {Type: List<Number>}
  Subnets: {Type: List<AWS::EC2::Subnet::Id>, Default: 'subnet-1, subnet-2'}
  Image: {Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>', Default: /golden/latest}
Resources:
  Bucket: {Type: AWS::S3::Bucket}
",
    )
    .unwrap();
    let check = |given: &[(&str, &str)],
                 previous: Option<&[(&str, &str)]>,
                 use_previous: &[&str],
                 expect: Expect| {
        let to_map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
        };
        let previous = previous.map(to_map);
        let use_previous: BTreeSet<String> =
            use_previous.iter().map(|name| (*name).to_owned()).collect();
        let rendered =
            match resolve_parameters(&template, &to_map(given), previous.as_ref(), &use_previous) {
                Ok(values) => format!("{values:?}"),
                Err(errors) => {
                    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
                }
            };
        expect.assert_eq(&rendered);
    };
    check(
        &[("Count", "2"), ("Name", "web"), ("Secret", "42"), ("Ports", "80,443")],
        None,
        &[],
        expect![[
            r#"{"Count": "2", "Env": "dev", "Image": "/golden/latest", "Name": "web", "Ports": "80,443", "Secret": "42", "Subnets": "subnet-1, subnet-2"}"#
        ]],
    );
    check(
        &[
            ("Env", "qa"),
            ("Count", "5"),
            ("Name", "Web-Server"),
            ("Secret", "hunter2"),
            ("Ports", "80,http"),
            ("Colour", "blue"),
        ],
        None,
        &[],
        expect![[r#"
            parameter `Colour`: found a value for a parameter the template does not declare; expected one of `Count`, `Env`, `Image`, `Name`, `Ports`, `Secret`, `Subnets`
            parameter `Count`: found "5"; expected at most 4 (one to four web servers)
            parameter `Env`: found "qa"; expected one of the allowed values "dev", "prod"
            parameter `Name`: found "Web-Server"; expected a value matching the pattern "[a-z]+"
            parameter `Ports`: found "http"; expected a number
            parameter `Secret`: found a hidden value; expected a value matching the pattern "[0-9]+""#]],
    );
    check(
        &[],
        None,
        &["Count"],
        expect![[r#"
            parameter `Count`: asked to use the previous value, but there is none; expected a value
            parameter `Name`: no value given and no default; expected a value
            parameter `Ports`: no value given and no default; expected a value
            parameter `Secret`: no value given and no default; expected a value"#]],
    );
    // Previous values are kept, given values win, and UsePreviousValue takes
    // the previous one even over a default.
    check(
        &[("Name", "new")],
        Some(&[("Env", "prod"), ("Count", "3"), ("Name", "old"), ("Secret", "1"), ("Ports", "80")]),
        &["Env"],
        expect![[
            r#"{"Count": "3", "Env": "prod", "Image": "/golden/latest", "Name": "new", "Ports": "80", "Secret": "1", "Subnets": "subnet-1, subnet-2"}"#
        ]],
    );
    check(
        &[("Name", "x")],
        None,
        &["Name"],
        expect![[r#"
            parameter `Count`: no value given and no default; expected a value
            parameter `Name`: found both a value and a request to use the previous value; expected one of them
            parameter `Ports`: no value given and no default; expected a value
            parameter `Secret`: no value given and no default; expected a value"#]],
    );
    let ctx = StaticContext::for_template(
        &template,
        &BTreeMap::from([("Subnets".to_owned(), "a, b".to_owned())]),
    );
    assert_eq!(ctx.parameters["Subnets"], Value::strings(["a", "b"]));
}

#[test]
fn policies_resolve_against_the_stack() {
    let template = template(
        "
Parameters:
  N: {Type: String, Default: '2'}
Resources:
  Asg:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties: {MinSize: 1, MaxSize: 2}
    CreationPolicy:
      ResourceSignal: {Count: !Ref N, Timeout: PT5M}
    UpdatePolicy:
      AutoScalingReplacingUpdate: {WillReplace: True}
      AutoScalingRollingUpdate: {MinInstancesInService: 1, PauseTime: PT1M30S, WaitOnResourceSignals: true}
",
    )
    .unwrap();
    let asg = &template.resources["Asg"];
    let ctx =
        StaticContext::for_template(&template, &BTreeMap::from([("N".to_owned(), "3".to_owned())]));
    let signal = asg.creation_policy.as_ref().unwrap().resource_signal.as_ref().unwrap();
    assert_eq!(signal.count.resolve(&ctx), Ok(3));
    assert_eq!(signal.timeout, Setting::Given(IsoDuration { seconds: 300 }));
    let update = asg.update_policy.as_ref().unwrap();
    assert_eq!(update.replacing_update.as_ref().unwrap().will_replace, Setting::Given(true));
    let rolling = update.rolling_update.as_ref().unwrap();
    assert_eq!(rolling.min_instances_in_service, Setting::Given(1));
    assert_eq!(rolling.max_batch_size, Setting::Given(1));
    assert_eq!(rolling.pause_time, Some(Setting::Given(IsoDuration { seconds: 90 })));
    assert_eq!(rolling.wait_on_resource_signals, Setting::Given(true));
    let bad = StaticContext::for_template(
        &template,
        &BTreeMap::from([("N".to_owned(), "two".to_owned())]),
    );
    expect![[r#"9:31: found "two"; expected a whole number from 0"#]]
        .assert_eq(&signal.count.resolve(&bad).unwrap_err().to_string());
}

#[test]
fn condition_functions_belong_to_conditions() {
    // Outside Conditions a condition is named (Fn::If, Condition), as
    // CloudFormation requires; the QA's one.yml loop and cg.yml.
    check_template(
        "
Parameters:
  P: {Type: String, Default: 'true'}
Conditions:
  C1: !Equals [a, b]
  G: !Ref P
  H: !If [C1, !Equals [a, a], !Equals [a, b]]
  I: !Equals [[a], [a]]
  J: !Not [!Equals [!Condition C1, x]]
  K: !And [!Condition C1, 'yes', 'True', false]
Resources:
  SG:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !Equals [a, b]
      Tags: [{Key: k, Value: !If [C1, !Not [!Condition C1], x]}]
Outputs:
  E: {Value: !Equals [a, b]}
  C: {Value: !Condition C1}
  N: {Value: !Join ['', [!Or [!Condition C1, !Condition C1]]]}
  Fine: {Value: !If [C1, a, b]}
",
        expect![[r#"
            t.yaml:6:6: error: found Ref in a condition; expected a condition function: Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition
            t.yaml:7:6: error: found Fn::If in a condition; expected a condition function: Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition
            t.yaml:8:15: error: found a list in Fn::Equals; expected a single value: a string, or a function that gives one
            t.yaml:8:20: error: found a list in Fn::Equals; expected a single value: a string, or a function that gives one
            t.yaml:9:21: error: found Condition in Fn::Equals; expected a single value: a string, or a function that gives one
            t.yaml:10:27: error: found "yes" in a condition; expected a condition function: Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition
            t.yaml:15:25: error: found Fn::Equals outside the Conditions section; expected condition functions only in Conditions (elsewhere, name a condition in Fn::If)
            t.yaml:16:39: error: found Fn::Not outside the Conditions section; expected condition functions only in Conditions (elsewhere, name a condition in Fn::If)
            t.yaml:18:14: error: found Fn::Equals outside the Conditions section; expected condition functions only in Conditions (elsewhere, name a condition in Fn::If)
            t.yaml:19:14: error: found Condition outside the Conditions section; expected condition functions only in Conditions (elsewhere, name a condition in Fn::If)
            t.yaml:20:26: error: found Fn::Or outside the Conditions section; expected condition functions only in Conditions (elsewhere, name a condition in Fn::If)"#]],
    );
}

#[test]
fn template_quotas() {
    let many = |section: &str, count: usize, entry: &dyn Fn(usize) -> String| {
        let entries: Vec<String> = (0..count).map(|n| format!("  {}", entry(n))).collect();
        format!("{section}:\n{}\n", entries.join("\n"))
    };
    let group = |n: usize| {
        format!("G{n}: {{Type: AWS::EC2::SecurityGroup, Properties: {{GroupDescription: d}}}}")
    };
    let at_most = [
        many("Resources", 500, &group),
        many("Outputs", 200, &|n| format!("O{n}: {{Value: x}}")),
        many("Parameters", 200, &|n| format!("P{n}: {{Type: String, Default: x}}")),
        many("Mappings", 200, &|n| format!("M{n}: {{k: {{v: x}}}}")),
        format!("Description: {}\n", "d".repeat(1024)),
    ]
    .concat();
    check_template(&at_most, expect!["ok: 500 resources"]);
    let over = [
        many("Resources", 501, &group),
        many("Outputs", 201, &|n| format!("O{n}: {{Value: x}}")),
        many("Parameters", 201, &|n| format!("P{n}: {{Type: String, Default: x}}")),
        many("Mappings", 201, &|n| format!("M{n}: {{k: {{v: x}}}}")),
        format!("Description: {}\n", "é".repeat(513)),
    ]
    .concat();
    check_template(
        &over,
        expect![[r#"
        t.yaml:502:3: error: found 501 resources; expected at most 500 (CloudFormation's quota)
        t.yaml:704:3: error: found 201 outputs; expected at most 200 (CloudFormation's quota)
        t.yaml:906:3: error: found 201 parameters; expected at most 200 (CloudFormation's quota)
        t.yaml:1108:3: error: found 201 mappings; expected at most 200 (CloudFormation's quota)
        t.yaml:1109:14: error: found a description of 1026 bytes; expected at most 1024 (CloudFormation's quota)"#]],
    );
    // 1 MB, as CloudFormation takes from S3 (and cfn-lint counts).
    let big = format!("{}# {}\n", many("Resources", 1, &group), "x".repeat(1_000_000));
    check_template(
        &big,
        expect![
            "t.yaml:1:1: error: found a template of 1000087 bytes; expected at most 1000000 bytes (CloudFormation's quota for a template)"
        ],
    );
}

#[test]
fn a_json_syntax_error_is_called_invalid_json() {
    // The QA's jbad.json: a missing comma.
    let text = r#"{
  "Resources": {
    "SG": {
      "Type": "AWS::EC2::SecurityGroup"
      "Properties": {"GroupDescription": "d"}
    }
  }
}"#;
    check_template(
        text,
        expect![
            "t.yaml:5:7: error: invalid JSON: while parsing a flow mapping, did not find expected ',' or '}'"
        ],
    );
    let named =
        parse_template(&SourceFile::new("t.json", "{Resources: [}")).unwrap_err().to_string();
    assert!(named.starts_with("t.json:1:14: error: invalid JSON: "), "{named}");
    check_template(
        "Resources: [\n",
        expect![
            "t.yaml:2:1: error: invalid YAML: while parsing a node, did not find expected node content"
        ],
    );
}
