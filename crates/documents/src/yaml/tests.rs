//! Tests of the spanned YAML tree: one `check` renders the tree or the
//! diagnostics as text.

use expect_test::{Expect, expect};

use super::*;

fn render(node: &Node, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    let span = format!("{}-{}", node.span.start, node.span.end);
    let tag = node.tag.as_deref().map(|tag| format!(" {tag}")).unwrap_or_default();
    match &node.value {
        Value::Sequence(items) => {
            out.push_str(&format!("{indent}{span} sequence{tag}\n"));
            for item in items {
                render(item, depth + 1, out);
            }
        }
        Value::Mapping(entries) => {
            out.push_str(&format!("{indent}{span} mapping{tag}\n"));
            for (key, value) in entries {
                render(key, depth + 1, out);
                render(value, depth + 2, out);
            }
        }
        value => {
            let style = node.scalar.as_ref().map(|scalar| scalar.style);
            let text = node.scalar_text().unwrap_or_default();
            out.push_str(&format!("{indent}{span} {value:?} {text:?} {style:?}{tag}\n"));
        }
    }
}

fn check(text: &str, expect: Expect) {
    let file = SourceFile::new("test.yaml", text);
    let mut reporter = Reporter::new("test.yaml");
    let mut out = String::new();
    if let Some(node) = parse_yaml_reporting(&file, &mut reporter) {
        render(&node, 0, &mut out);
    }
    for diagnostic in reporter.into_diagnostics() {
        out.push_str(&format!("{diagnostic}\n"));
    }
    expect.assert_eq(&out);
}

#[test]
fn core_schema_scalars() {
    check(
        "a: 1.0\nb: \"1.0\"\nc: yes\nd: no\ne: true\nf: ~\ng:\nh: 0x1F\ni: -12\nj: .inf\nk: 1e3\nl: 'null'\nm: 99999999999999999999\nn: 0o17\no: 1.2.3\n",
        expect![[r#"
            1:1-16:1 mapping
              1:1-1:2 String("a") "a" Some(Plain)
                1:4-1:7 Float(1.0) "1.0" Some(Plain)
              2:1-2:2 String("b") "b" Some(Plain)
                2:4-2:9 String("1.0") "1.0" Some(DoubleQuoted)
              3:1-3:2 String("c") "c" Some(Plain)
                3:4-3:7 String("yes") "yes" Some(Plain)
              4:1-4:2 String("d") "d" Some(Plain)
                4:4-4:6 String("no") "no" Some(Plain)
              5:1-5:2 String("e") "e" Some(Plain)
                5:4-5:8 Bool(true) "true" Some(Plain)
              6:1-6:2 String("f") "f" Some(Plain)
                6:4-6:5 Null "~" Some(Plain)
              7:1-7:2 String("g") "g" Some(Plain)
                7:2-7:2 Null "" Some(Plain)
              8:1-8:2 String("h") "h" Some(Plain)
                8:4-8:8 Int(31) "0x1F" Some(Plain)
              9:1-9:2 String("i") "i" Some(Plain)
                9:4-9:7 Int(-12) "-12" Some(Plain)
              10:1-10:2 String("j") "j" Some(Plain)
                10:4-10:8 Float(inf) ".inf" Some(Plain)
              11:1-11:2 String("k") "k" Some(Plain)
                11:4-11:7 Float(1000.0) "1e3" Some(Plain)
              12:1-12:2 String("l") "l" Some(Plain)
                12:4-12:10 String("null") "null" Some(SingleQuoted)
              13:1-13:2 String("m") "m" Some(Plain)
                13:4-13:24 Float(1e20) "99999999999999999999" Some(Plain)
              14:1-14:2 String("n") "n" Some(Plain)
                14:4-14:8 Int(15) "0o17" Some(Plain)
              15:1-15:2 String("o") "o" Some(Plain)
                15:4-15:9 String("1.2.3") "1.2.3" Some(Plain)
        "#]],
    );
}

#[test]
fn tags_are_kept() {
    check(
        "Value: !Ref Bucket\nName: !Sub \"${AWS::StackName}-x\"\nArn: !GetAtt [Role, Arn]\nJoin: !Join\n  - ''\n  - [a, b]\nForced: !!str 12\nPlain: ! 13\nMap: !If {a: b}\n",
        expect![[r#"
            1:1-10:1 mapping
              1:1-1:6 String("Value") "Value" Some(Plain)
                1:8-1:19 String("Bucket") "Bucket" Some(Plain) !Ref
              2:1-2:5 String("Name") "Name" Some(Plain)
                2:7-2:33 String("${AWS::StackName}-x") "${AWS::StackName}-x" Some(DoubleQuoted) !Sub
              3:1-3:4 String("Arn") "Arn" Some(Plain)
                3:6-3:25 sequence !GetAtt
                  3:15-3:19 String("Role") "Role" Some(Plain)
                  3:21-3:24 String("Arn") "Arn" Some(Plain)
              4:1-4:5 String("Join") "Join" Some(Plain)
                4:7-7:1 sequence !Join
                  5:5-5:7 String("") "" Some(SingleQuoted)
                  6:5-6:11 sequence
                    6:6-6:7 String("a") "a" Some(Plain)
                    6:9-6:10 String("b") "b" Some(Plain)
              7:1-7:7 String("Forced") "Forced" Some(Plain)
                7:9-7:17 String("12") "12" Some(Plain)
              8:1-8:6 String("Plain") "Plain" Some(Plain)
                8:8-8:12 String("13") "13" Some(Plain)
              9:1-9:4 String("Map") "Map" Some(Plain)
                9:6-9:16 mapping !If
                  9:11-9:12 String("a") "a" Some(Plain)
                    9:14-9:15 String("b") "b" Some(Plain)
        "#]],
    );
}

#[test]
fn json_input() {
    check(
        "{\n\t\"name\": \"x\",\n\t\"version\": 1.0,\n\t\"list\": [1, \"a\", {\"k\": null}, true]\n}\n",
        expect![[r#"
            1:1-5:2 mapping
              2:2-2:8 String("name") "name" Some(DoubleQuoted)
                2:10-2:13 String("x") "x" Some(DoubleQuoted)
              3:2-3:11 String("version") "version" Some(DoubleQuoted)
                3:13-3:16 Float(1.0) "1.0" Some(Plain)
              4:2-4:8 String("list") "list" Some(DoubleQuoted)
                4:10-4:37 sequence
                  4:11-4:12 Int(1) "1" Some(Plain)
                  4:14-4:17 String("a") "a" Some(DoubleQuoted)
                  4:19-4:30 mapping
                    4:20-4:23 String("k") "k" Some(DoubleQuoted)
                      4:25-4:29 Null "null" Some(Plain)
                  4:32-4:36 Bool(true) "true" Some(Plain)
        "#]],
    );
}

#[test]
fn syntax_errors_have_positions() {
    check(
        "a: b\n c: d\n",
        expect![[r#"
            test.yaml:2:3: error: invalid YAML: mapping values are not allowed in this context
        "#]],
    );
    check(
        "a: \"unterminated\n",
        expect![[r#"
            test.yaml:1:4: error: invalid YAML: while scanning a quoted scalar, found unexpected end of stream
        "#]],
    );
    check(
        "a: [1, 2\nb: 3\n",
        expect![[r#"
            test.yaml:2:2: error: invalid YAML: illegal placement of ':' indicator
        "#]],
    );
    check(
        "a: *nowhere\n",
        expect![[r#"
            test.yaml:1:4: error: invalid YAML: while parsing node, found unknown anchor
        "#]],
    );
}

#[test]
fn duplicates_aliases_and_documents() {
    check(
        "a: &x 1\nb: *x\na: 2\n\"a\": 3\n1: one\n'1': string one\n---\nc: 4\n",
        expect![[r#"
            1:1-7:1 mapping
              1:1-1:2 String("a") "a" Some(Plain)
                1:4-1:8 Int(1) "1" Some(Plain)
              2:1-2:2 String("b") "b" Some(Plain)
                2:4-2:6 Null "" Some(Plain)
              3:1-3:2 String("a") "a" Some(Plain)
                3:4-3:5 Int(2) "2" Some(Plain)
              4:1-4:4 String("a") "a" Some(DoubleQuoted)
                4:6-4:7 Int(3) "3" Some(Plain)
              5:1-5:2 Int(1) "1" Some(Plain)
                5:4-5:7 String("one") "one" Some(Plain)
              6:1-6:4 String("1") "1" Some(SingleQuoted)
                6:6-6:16 String("string one") "string one" Some(Plain)
            test.yaml:2:4: error: found an alias; aliases (`*name`) are not supported, write the value out
            test.yaml:3:1: error: duplicate key `a`, first given at 1:1
            test.yaml:4:1: error: duplicate key `a`, first given at 1:1
            test.yaml:7:1: error: found a second YAML document; expected a single document
        "#]],
    );
}

#[test]
fn empty_documents() {
    check(
        "",
        expect![[r#"
            1:1-1:1 Null "" Some(Plain)
        "#]],
    );
    check(
        "# only a comment\n",
        expect![[r#"
            1:1-1:1 Null "" Some(Plain)
        "#]],
    );
}

#[test]
fn bad_core_tags() {
    check(
        "a: !!int x\nb: !!binary abc\nc: !!map [1]\n",
        expect![[r#"
            1:1-4:1 mapping
              1:1-1:2 String("a") "a" Some(Plain)
                1:4-1:11 String("x") "x" Some(Plain)
              2:1-2:2 String("b") "b" Some(Plain)
                2:4-2:16 String("abc") "abc" Some(Plain)
              3:1-3:2 String("c") "c" Some(Plain)
                3:4-3:13 sequence
                  3:11-3:12 Int(1) "1" Some(Plain)
            test.yaml:1:4: error: found "x" tagged !!int; expected a valid int
            test.yaml:2:4: error: found the tag !!binary; expected one of !!str, !!int, !!float, !!bool, !!null
            test.yaml:3:4: error: found the tag !!map on a collection; expected !!seq or no tag
        "#]],
    );
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let error = parse_yaml(&SourceFile::new("deep.yaml", text)).unwrap_err();
    expect!["deep.yaml:1:129: error: found collections nested deeper than 128 levels; expected shallower nesting"]
        .assert_eq(&error.to_string());
}

#[test]
fn mapping_reader() {
    let file = SourceFile::new(
        "r.yaml",
        "name: [x]\nAction: run\ncount: \"3\"\nflag: yes\nextra: 1\n[k]: v\nloop: {}\nratio: .nan\n",
    );
    let node = parse_yaml(&file).unwrap();
    let mut reporter = Reporter::new("r.yaml");
    let mut map = MappingReader::new(&node, &mut reporter).unwrap();
    assert_eq!(
        map.required("name", &mut reporter).and_then(|n| n.expect_string(&mut reporter)),
        None
    );
    assert!(map.required("action", &mut reporter).is_none());
    assert_eq!(
        map.required("count", &mut reporter).and_then(|n| n.expect_integer(&mut reporter)),
        None
    );
    assert_eq!(map.optional("flag").and_then(|n| n.expect_bool(&mut reporter)), None);
    assert_eq!(map.optional("ratio").and_then(|n| n.expect_number(&mut reporter)), None);
    assert!(map.optional("absent").is_none());
    map.unsupported("loop", "loops are not supported yet");
    map.finish(&mut reporter);
    let text: Vec<String> = reporter.into_diagnostics().iter().map(ToString::to_string).collect();
    expect![[r#"
        r.yaml:1:1: error: missing required key `action`
        r.yaml:1:7: error: expected a string, found a sequence
        r.yaml:2:1: error: unknown key `Action`, did you mean `action`?
        r.yaml:3:8: error: expected an integer, found the string "3"
        r.yaml:4:7: error: expected a boolean (true or false), found the string "yes"
        r.yaml:5:1: error: unknown key `extra`; expected one of `name`, `action`, `count`, `flag`, `ratio`, `absent`
        r.yaml:6:1: error: expected a string key, found a sequence
        r.yaml:7:1: error: found key `loop`, which is not supported: loops are not supported yet
        r.yaml:8:8: error: expected a number, found the number .nan"#]]
    .assert_eq(&text.join("\n"));
}
