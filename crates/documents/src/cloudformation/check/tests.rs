//! Tests of [`check_values`]: templates with the parameters a request gives,
//! checked in a context like the one a stack request is checked in (region
//! `local`, its three zones, no resource made yet).

use std::collections::{BTreeMap, BTreeSet};

use expect_test::{Expect, expect};

use crate::cloudformation::{
    StaticContext, Value, check_values, evaluate_conditions, parse_template, resolve_parameters,
};
use crate::source::SourceFile;

/// The problems `check_values` finds in `text` with the parameters `given`,
/// one per line, or `ok`; a template that does not parse gives its
/// diagnostics after `parse:`.
fn problems(text: &str, given: &[(&str, &str)]) -> String {
    let mut template = match parse_template(&SourceFile::new("t.yaml", text)) {
        Ok(template) => template,
        Err(diagnostics) => return format!("parse:\n{diagnostics}"),
    };
    let given: BTreeMap<String, String> =
        given.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    let values = resolve_parameters(&template, &given, None, &BTreeSet::new()).unwrap();
    let mut ctx = StaticContext::for_template(&template, &values);
    for (name, value) in [
        ("AWS::Region", "local"),
        ("AWS::StackName", "st"),
        ("AWS::StackId", "arn:aws:cloudformation:local:000000000000:stack/st/1"),
        ("AWS::AccountId", "000000000000"),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
    ] {
        ctx.pseudo_parameters.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    ctx.pseudo_parameters.insert("AWS::NotificationARNs".to_owned(), Value::List(Vec::new()));
    let zones = vec!["local-a".to_owned(), "local-b".to_owned(), "local-c".to_owned()];
    ctx.availability_zones.insert("local".to_owned(), zones.clone());
    ctx.availability_zones.insert(String::new(), zones);
    ctx.conditions = evaluate_conditions(&template, &ctx).unwrap();
    template.choose_policies(&ctx.conditions);
    let found = check_values("t.yaml", &template, &ctx);
    if found.is_empty() {
        return "ok".to_owned();
    }
    found.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

fn check(text: &str, given: &[(&str, &str)], expect: Expect) {
    expect.assert_eq(&problems(text, given));
}

#[test]
fn intrinsic_functions_that_fail_on_known_values_are_found_before_anything_is_made() {
    let text = r#"
Parameters:
  Idx: {Type: Number, Default: 7}
  Secret: {Type: String, NoEcho: true}
Mappings:
  M:
    us-east-1: {Name: east}
    k1: {Name: one}
Resources:
  Sel: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !Select [5, [a, b]]}}
  Neg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !Select ["-1", [a, b]]}}
  SelIdx: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !Select [!Ref Idx, [a, b]]}}
  Join: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !Join [",", notalist]}}
  B64: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !Base64 [a]}}
  Region: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !FindInMap [M, !Ref "AWS::Region", Name]}}
  Leak: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !FindInMap [M, !Ref Secret, Name]}}
  Azs: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !Join [",", !GetAZs us-west-2]}}
  SubNoValue: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !Sub ["${A}", {A: !Ref "AWS::NoValue"}]}}
  Two:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !Select [2, [a, b]]
      Tags: [{Key: !Select [1, [a]], Value: !FindInMap [M, k1, !Ref Idx]}]
  Fine:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !Join ["-", [!Ref Sel, !GetAtt Sel.GroupId, !Select [0, !GetAtt Sel.VpcId], !Select [2, !GetAZs ""], !Sub "${Sel.GroupId}-${AWS::Region}"]]
      Tags:
        - {Key: k, Value: !Select [1, [!Ref Sel, !Ref Neg]]}
        - {Key: l, Value: !Join [",", !Split ["|", !ImportValue x]]}
Outputs:
  Pseudo: {Value: !Sub "${AWS::NotificationARNs}"}
"#;
    // Every problem at once, each where it is written; values from
    // resources and imports are not known yet and pass.
    check(
        text,
        &[("Secret", "TopSecretValue")],
        expect![[r#"
            t.yaml:10:71: error: found the index 5 in Fn::Select; expected an index below the list's length 2
            t.yaml:11:80: error: found the string "-1" in Fn::Select; expected a whole number from 0
            t.yaml:12:74: error: found the index 7 in Fn::Select; expected an index below the list's length 2
            t.yaml:13:84: error: found the string "notalist" in Fn::Join; expected a list of strings
            t.yaml:14:71: error: found a list in Fn::Base64; expected a string
            t.yaml:15:89: error: found the key `local`, which mapping `M` does not have; expected one of `k1`, `us-east-1` (the key is AWS::Region, which is `local` for this stack)
            t.yaml:16:87: error: found the key `****`, which mapping `M` does not have; expected one of `k1`, `us-east-1`
            t.yaml:17:83: error: found the region `us-west-2` in Fn::GetAZs; expected the stack's region `local` or "": availability zones exist locally for the stack's region only
            t.yaml:18:96: error: found AWS::NoValue in Fn::Sub; it can only remove a property or list item
            t.yaml:22:25: error: found the index 2 in Fn::Select; expected an index below the list's length 2
            t.yaml:23:20: error: found the index 1 in Fn::Select; expected an index below the list's length 1
            t.yaml:23:64: error: found the key `7`, which mapping `M` does not have under `k1`; expected one of `Name`
            t.yaml:32:25: error: found a list in Fn::Sub; expected a string"#]],
    );
    assert!(!problems(text, &[("Secret", "TopSecretValue")]).contains("TopSecret"));
}

#[test]
fn references_to_resources_that_are_not_created() {
    let text = "
Parameters:
  Env: {Type: String, Default: dev}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
Resources:
  ProdSG:
    Type: AWS::EC2::SecurityGroup
    Condition: IsProd
    Properties: {GroupDescription: prod}
  SG:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !Ref ProdSG
      Tags: [{Key: k, Value: !If [IsProd, !Ref ProdSG, none]}]
  SG2:
    Type: AWS::EC2::SecurityGroup
    DependsOn: [SG, ProdSG]
    Properties: {GroupDescription: x}
  OnlyInProd:
    Type: AWS::EC2::SecurityGroup
    Condition: IsProd
    DependsOn: ProdSG
    Properties: {GroupDescription: !GetAtt ProdSG.GroupId}
Outputs:
  O:
    Value: !GetAtt ProdSG.GroupId
  Guarded:
    Value: !If [IsProd, !Ref ProdSG, none]
  WhenProd:
    Condition: IsProd
    Value: !Sub '${ProdSG.GroupId}'
";
    check(
        text,
        &[],
        expect![[r#"
            t.yaml:14:25: error: found a reference to the resource `ProdSG`, which is not created: its condition `IsProd` is false; expected a resource that is created, or the reference inside Fn::If [IsProd, ...]
            t.yaml:18:21: error: found DependsOn `ProdSG`, a resource that is not created: its condition `IsProd` is false; expected a resource that is created
            t.yaml:27:12: error: found a reference to the resource `ProdSG`, which is not created: its condition `IsProd` is false; expected a resource that is created, or the reference inside Fn::If [IsProd, ...]"#]],
    );
    check(text, &[("Env", "prod")], expect!["ok"]);
}

#[test]
fn outputs_must_be_strings() {
    let text = r#"
Parameters:
  Subnets: {Type: CommaDelimitedList, Default: "a,b"}
Conditions:
  Both: !Equals [a, b]
Resources:
  SG: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d}}
Outputs:
  List: {Value: [a, b]}
  Split: {Value: !Split [",", "a,b"]}
  Param: {Value: !Ref Subnets}
  Map: {Value: {a: !Ref SG}}
  NoValue: {Value: !If [Both, bothval, !Ref "AWS::NoValue"]}
  Arns: {Value: !Ref "AWS::NotificationARNs"}
  Export: {Value: x, Export: {Name: [a]}}
  Number: {Value: 5}
  Boolean: {Value: true}
  Joined: {Value: !Join [",", !Ref Subnets]}
  Resource: {Value: !GetAtt SG.GroupId}
  Conditional: {Value: [a], Condition: Both}
"#;
    check(
        text,
        &[],
        expect![[r#"
            t.yaml:9:17: error: found a list as the value of output `List`; expected a string, as every output's Value must be
            t.yaml:10:18: error: found a list as the value of output `Split`; expected a string, as every output's Value must be
            t.yaml:11:18: error: found a list as the value of output `Param`; expected a string, as every output's Value must be
            t.yaml:12:16: error: found a map as the value of output `Map`; expected a string, as every output's Value must be
            t.yaml:13:20: error: found AWS::NoValue as the value of output `NoValue`; expected a string, as every output's Value must be (an output that may be left out takes a Condition)
            t.yaml:14:17: error: found a list as the value of output `Arns`; expected a string, as every output's Value must be
            t.yaml:15:37: error: found a list as the export name of output `Export`; expected a string"#]],
    );
}

#[test]
fn rules_refuse_parameter_values_before_anything_is_made() {
    // The QA's rules.yml, and rule functions on lists.
    let text = "
Parameters:
  Env: {Type: String, Default: dev}
  Types: {Type: CommaDelimitedList, Default: 't3.micro,t3.small'}
Rules:
  ProdOnly:
    RuleCondition: !Equals [!Ref Env, dev]
    Assertions:
      - Assert: !Equals [!Ref Env, prod]
        AssertDescription: Env must be prod
  SmallTypes:
    Assertions:
      - Assert: !EachMemberIn [!Ref Types, [t3.micro, t3.small]]
        AssertDescription: only micro and small instances
      - Assert:
          Fn::And:
            - !Contains [!Ref Types, t3.micro]
            - !Not [!EachMemberEquals [!Ref Types, t3.large]]
            - !Equals [!Select [0, !Ref Types], t3.micro]
Resources:
  SG: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d}}
";
    check(
        text,
        &[],
        expect![
            "t.yaml:9:17: error: found parameter values that rule `ProdOnly` refuses: Env must be prod"
        ],
    );
    check(text, &[("Env", "prod")], expect!["ok"]);
    check(
        text,
        &[("Env", "prod"), ("Types", "t3.micro, m5.large")],
        expect![
            "t.yaml:13:17: error: found parameter values that rule `SmallTypes` refuses: only micro and small instances"
        ],
    );
    check(
        text,
        &[("Env", "prod"), ("Types", "t3.small")],
        expect![[r#"
            t.yaml:16:11: error: found parameter values that rule `SmallTypes` refuses (its assertion is false for them)"#]],
    );
    // Rules see parameters and pseudo parameters only, and are made of rule
    // functions.
    check(
        "
Rules:
  R:
    RuleCondition: !Ref AWS::Region
    Assertions:
      - Assert: !Equals [!Ref SG, x]
      - Assert: !Contains [[a], !GetAtt SG.GroupId]
  S:
    Assertions:
      - {AssertDescription: no assert}
Resources:
  SG: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d}}
  SG2: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !Contains [[a], a]}}
",
        &[],
        expect![[r#"
            parse:
            t.yaml:4:20: error: found Ref in a rule; expected a rule function: Fn::Equals, Fn::And, Fn::Or, Fn::Not, Fn::Contains, Fn::EachMemberEquals or Fn::EachMemberIn
            t.yaml:6:26: error: found a reference to the resource `SG` in a rule; expected a parameter or pseudo parameter
            t.yaml:7:33: error: found the attribute `SG.GroupId` in a rule; expected a parameter or pseudo parameter
            t.yaml:10:9: error: missing required key `Assert`
            t.yaml:13:71: error: found Fn::Contains outside the Rules section; expected rule functions only in the assertions and conditions of Rules"#]],
    );
}

#[test]
fn region_keyed_mappings_resolve_under_the_stack_region() {
    let text = "
Mappings:
  RegionMap:
    local: {AMI: webapp/1.0.0/1}
    us-east-1: {AMI: ami-1}
Resources:
  SG:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: !FindInMap [RegionMap, !Ref AWS::Region, AMI]
      Tags:
        - {Key: zones, Value: !Join [',', {'Fn::GetAZs': !Ref AWS::Region}]}
        - {Key: first, Value: !Select [0, !GetAZs '']}
";
    check(text, &[], expect!["ok"]);
}

#[test]
fn policies_written_with_fn_if() {
    // The QA's upif2.yml and upif3.yml: a whole UpdatePolicy, and one part of
    // it, chosen by a condition; a CreationPolicy part too.
    let text = "
Parameters:
  Signal: {Type: String, Default: 'yes'}
  Size: {Type: String, Default: '1'}
Conditions:
  DoSignal: !Equals [!Ref Signal, 'yes']
Resources:
  Whole:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties: {MinSize: '0', MaxSize: '2'}
    UpdatePolicy: !If
      - DoSignal
      - AutoScalingReplacingUpdate:
          WillReplace: true
      - !Ref AWS::NoValue
  Part:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties: {MinSize: '0', MaxSize: '2'}
    CreationPolicy:
      ResourceSignal: !If [DoSignal, {Count: !Ref Size, Timeout: PT2M}, !Ref AWS::NoValue]
    UpdatePolicy:
      AutoScalingReplacingUpdate: {WillReplace: true}
      AutoScalingRollingUpdate: !If
        - DoSignal
        - MaxBatchSize: 1
          WaitOnResourceSignals: true
          PauseTime: PT1M
        - {'Fn::If': [DoSignal, {MaxBatchSize: 3}, !Ref AWS::NoValue]}
";
    let choose = |signal: &str| {
        let mut template = parse_template(&SourceFile::new("t.yaml", text)).unwrap();
        let values = BTreeMap::from([
            ("Signal".to_owned(), signal.to_owned()),
            ("Size".to_owned(), "1".to_owned()),
        ]);
        let ctx = StaticContext::for_template(&template, &values);
        template.choose_policies(&evaluate_conditions(&template, &ctx).unwrap());
        template
    };
    let yes = choose("yes");
    let whole = yes.resources["Whole"].update_policy.as_ref().unwrap();
    assert!(whole.replacing_update.is_some());
    let part = &yes.resources["Part"];
    let rolling = part.update_policy.as_ref().unwrap().rolling_update.as_ref().unwrap();
    assert_eq!(rolling.wait_on_resource_signals, crate::cloudformation::Setting::Given(true));
    assert!(part.update_policy.as_ref().unwrap().replacing_update.is_some());
    assert!(part.creation_policy.as_ref().unwrap().resource_signal.is_some());
    let no = choose("no");
    assert_eq!(no.resources["Whole"].update_policy, None);
    let part = &no.resources["Part"];
    assert!(part.update_policy.as_ref().unwrap().rolling_update.is_none());
    assert!(part.update_policy.as_ref().unwrap().replacing_update.is_some());
    assert!(part.creation_policy.as_ref().unwrap().resource_signal.is_none());
    check(text, &[], expect!["ok"]);
    // The chosen policy's settings are checked with the rest.
    check(
        "
Conditions:
  C: !Equals [a, a]
Resources:
  G:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties: {MinSize: '0', MaxSize: '2'}
    CreationPolicy: !If [C, {ResourceSignal: {Count: !Select [3, ['1']]}}, !Ref AWS::NoValue]
    UpdatePolicy: !If [C, !Ref AWS::NoValue, {AutoScalingRollingUpdate: {MaxBatchSize: !Select [1, []]}}]
",
        &[],
        // The branch C does not choose is not checked.
        expect![
            "t.yaml:8:54: error: found the index 3 in Fn::Select; expected an index below the list's length 1"
        ],
    );
    // The branches' conditions must be declared, and policies stay on groups.
    check(
        "
Conditions:
  C: !Equals [a, a]
Resources:
  G:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties: {MinSize: '0', MaxSize: '2'}
    UpdatePolicy: {AutoScalingRollingUpdate: !If [Nope, {}, {}]}
  SG:
    Type: AWS::EC2::SecurityGroup
    Properties: {GroupDescription: d}
    UpdatePolicy: !If [C, !Ref AWS::NoValue, {AutoScalingReplacingUpdate: {WillReplace: true}}]
",
        &[],
        expect![[r#"
            parse:
            t.yaml:8:51: error: found the condition `Nope`, which is not declared; expected one of C
            t.yaml:12:46: error: found an UpdatePolicy on AWS::EC2::SecurityGroup; expected it only on AWS::AutoScaling::AutoScalingGroup"#]],
    );
}

#[test]
fn get_att_with_an_attribute_from_a_parameter() {
    // The QA's ga.yml.
    let text = r#"
Parameters:
  A: {Type: String, Default: GroupId}
Resources:
  SG: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d}}
Outputs:
  O: {Value: {"Fn::GetAtt": [SG, !Ref A]}}
  R: {Value: !Ref "AWS::StackName"}
"#;
    check(text, &[], expect!["ok"]);
    check(
        text,
        &[("A", "Arn")],
        expect![
            "t.yaml:7:14: error: found the attribute `Arn` (parameter `A`) of `SG` (AWS::EC2::SecurityGroup); expected one of GroupId, Id, VpcId"
        ],
    );
    check(
        "
Resources:
  SG: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d}}
  SG2: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !GetAtt [SG, !Ref SG]}}
  SG3: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !GetAtt [SG, !Ref Nope]}}
",
        &[],
        expect![[r#"
            parse:
            t.yaml:4:84: error: found a reference to the resource `SG` as the attribute name of Fn::GetAtt; expected a parameter
            t.yaml:5:84: error: found a reference to `Nope`, which is not declared; expected a parameter, a resource or a pseudo parameter"#]],
    );
}
