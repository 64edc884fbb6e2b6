//! ts-rs and schemars must never disagree about the wire.
//!
//! For a corpus of serde shapes, real values are serialized with serde (what the server sends)
//! and mutated structurally (keys removed, types changed, tags replaced, keys added). Each value
//! is then judged three ways: `tsc` against the generated TypeScript type, the validator against
//! the JSON Schema, and serde itself. The rules:
//!
//! - **Outputs**: every value serde writes type-checks against the TS type and passes the
//!   output schema (what `JSON.parse` yields is what the `.d.ts` says).
//! - **Inputs**: whatever the TS type admits, the server accepts: the input schema has no
//!   structural issue with it and serde deserializes it. (The TS type may be stricter than the
//!   server, never looser.)
//! - Whatever the input schema accepts, serde deserializes (the validator never waves through
//!   what the handler then cannot read).
//!
//! Needs Node.js and the repository's npm packages (`npm ci` at the repository root).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use oxrpc::validate::Validator;
use oxrpc::{Error, Input, Output, Procedure, UnknownFields};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ts_rs::TS;

// ---- The corpus: one type per serde feature, nested where it matters. ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
struct Renamed {
    first_name: String,
    #[serde(rename = "ID")]
    #[ts(rename = "ID")]
    id: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Level {
    Low,
    VeryHigh,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "type")]
enum Internally {
    Unit,
    Struct { a: u8, b: String },
    Newtype(Renamed),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    Unit,
    Newtype(u16),
    Tuple(u8, String),
    Struct { x: i32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
enum External {
    Unit,
    Newtype(String),
    Tuple(u8, bool),
    Struct { y: f64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(untagged)]
enum Untagged {
    Num(f64),
    Text(String),
    Obj { key: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
struct Base {
    id: u64,
    created: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
struct Flattened {
    name: String,
    #[serde(flatten)]
    #[ts(flatten)]
    base: Base,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
struct Optionals {
    plain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[ts(optional)]
    skipped: Option<u8>,
    #[serde(default)]
    defaulted: Vec<String>,
    #[serde(skip)]
    #[ts(skip)]
    #[schemars(skip)]
    hidden: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
struct Page<T> {
    items: Vec<T>,
    next: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
struct Newtype(String);

/// Constraints serde does not check (the validator must).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
struct Constrained {
    #[schemars(length(min = 1, max = 8))]
    name: String,
    #[schemars(range(min = 1, max = 10))]
    n: u8,
    tags: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
struct TupleStruct(u8, String, bool);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
struct Maps {
    by_name: BTreeMap<String, Level>,
    counts: HashMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
struct Nested {
    level: Level,
    internally: Vec<Internally>,
    adjacent: Adjacent,
    external: External,
    untagged: Vec<Untagged>,
    flattened: Flattened,
    optionals: Optionals,
    page: Page<Renamed>,
    newtype: Newtype,
    tuple: TupleStruct,
    maps: Maps,
    pair: (u8, Option<String>),
}

// ---- Samples: what serde writes. ----

fn renamed(n: u32) -> Renamed {
    Renamed {
        first_name: format!("n{n}"),
        id: n,
    }
}

fn nested_samples() -> Vec<Nested> {
    let full = Nested {
        level: Level::VeryHigh,
        internally: vec![
            Internally::Unit,
            Internally::Struct {
                a: 1,
                b: "b".into(),
            },
            Internally::Newtype(renamed(2)),
        ],
        adjacent: Adjacent::Tuple(3, "t".into()),
        external: External::Struct { y: 1.5 },
        untagged: vec![
            Untagged::Num(1.5),
            Untagged::Text("s".into()),
            Untagged::Obj { key: "k".into() },
        ],
        flattened: Flattened {
            name: "f".into(),
            base: Base {
                id: 7,
                created: "today".into(),
            },
        },
        optionals: Optionals {
            plain: Some("p".into()),
            skipped: Some(3),
            defaulted: vec!["d".into()],
            hidden: false,
        },
        page: Page {
            items: vec![renamed(1), renamed(2)],
            next: Some(3),
        },
        newtype: Newtype("nt".into()),
        tuple: TupleStruct(1, "two".into(), true),
        maps: Maps {
            by_name: BTreeMap::from([("a".to_owned(), Level::Low)]),
            counts: HashMap::from([("c".to_owned(), 2)]),
        },
        pair: (9, Some("nine".into())),
    };
    let sparse = Nested {
        level: Level::Low,
        internally: vec![],
        adjacent: Adjacent::Unit,
        external: External::Unit,
        untagged: vec![],
        optionals: Optionals {
            plain: None,
            skipped: None,
            defaulted: vec![],
            hidden: false,
        },
        page: Page {
            items: vec![],
            next: None,
        },
        maps: Maps {
            by_name: BTreeMap::new(),
            counts: HashMap::new(),
        },
        pair: (0, None),
        ..full.clone()
    };
    let variants = Nested {
        adjacent: Adjacent::Struct { x: -4 },
        external: External::Newtype("e".into()),
        ..sparse.clone()
    };
    let more = Nested {
        adjacent: Adjacent::Newtype(5),
        external: External::Tuple(1, false),
        ..sparse.clone()
    };
    vec![full, sparse, variants, more]
}

// ---- Structural mutations. ----

/// Every structural variation of `value`: each key removed, each value swapped for another
/// JSON type, string values replaced by an unknown tag, an unknown key added to each object.
fn mutants(value: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let alternatives = [
        json!(null),
        json!(0),
        json!("zz"),
        json!(true),
        json!([]),
        json!({}),
    ];
    let mut paths = Vec::new();
    collect_paths(value, &mut Vec::new(), &mut paths);
    for path in &paths {
        let current = pointer(value, path);
        for alternative in &alternatives {
            if same_json_type(current, alternative) {
                continue;
            }
            out.push(replaced(value, path, alternative.clone()));
        }
        if current.is_string() {
            out.push(replaced(value, path, json!("NotAVariant")));
        }
        if let Some(Value::Object(_)) = path.last().map(|_| parent(value, path)) {
            out.push(removed(value, path));
        }
        if let Value::Object(_) = current {
            let mut with_extra = current.clone();
            with_extra
                .as_object_mut()
                .map(|m| m.insert("zzExtra".into(), json!(1)));
            out.push(replaced(value, path, with_extra));
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn collect_paths(value: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                here.push(Step::Key(k.clone()));
                collect_paths(v, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                here.push(Step::Index(i));
                collect_paths(v, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn pointer<'a>(value: &'a Value, path: &[Step]) -> &'a Value {
    path.iter().fold(value, |v, step| match step {
        Step::Key(k) => &v[k.as_str()],
        Step::Index(i) => &v[*i],
    })
}

fn parent<'a>(value: &'a Value, path: &[Step]) -> &'a Value {
    pointer(value, &path[..path.len() - 1])
}

fn pointer_mut<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

fn replaced(value: &Value, path: &[Step], with: Value) -> Value {
    let mut copy = value.clone();
    *pointer_mut(&mut copy, path) = with;
    copy
}

fn removed(value: &Value, path: &[Step]) -> Value {
    let mut copy = value.clone();
    if let (Some(Step::Key(k)), Value::Object(map)) =
        (path.last(), pointer_mut(&mut copy, &path[..path.len() - 1]))
    {
        map.remove(k);
    }
    copy
}

fn same_json_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

// ---- The judges. ----

struct Case {
    label: String,
    ts_type: String,
    value: Value,
    role: Role,
    schema_structural_ok: bool,
    /// No issue at all (constraints included).
    schema_ok: bool,
    serde_ok: bool,
    /// The input validator says serde checks everything it does.
    serde_checks_all: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// A value serde wrote: everything must accept it.
    Output,
    /// A mutant: whatever TS admits, the server must accept.
    Input,
}

struct Subject {
    ts_type: String,
    declarations: Vec<String>,
    input_schema: Validator,
    output_schema: Validator,
    serde_ok: fn(&Value) -> bool,
}

fn subject<T: Input + Output + Clone>() -> Subject {
    let p = Procedure::<()>::query("x", |_: (), v: T| async move { Ok::<_, Error>(v) });
    let cfg = ts_rs::Config::new().with_large_int("number");
    let mut declarations: Vec<String> = Vec::new();
    for info in [p.input(), p.output()] {
        for d in info.ts_declarations(&cfg) {
            if !declarations.contains(&d.code) {
                declarations.push(d.code);
            }
        }
    }
    Subject {
        ts_type: p.output().ts_name(&cfg),
        declarations,
        input_schema: p.input().validator().expect("input schema compiles"),
        output_schema: p.output().validator().expect("output schema compiles"),
        serde_ok: |v| T::deserialize(v).is_ok(),
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs tsc over `source`; returns the (1-based) lines with errors.
fn tsc_error_lines(dir: &Path, source: &str) -> std::collections::BTreeSet<usize> {
    let tsc = repo_root().join("node_modules/typescript/bin/tsc");
    assert!(
        tsc.is_file(),
        "TypeScript is not installed: run `npm ci` at the repository root (needs Node.js 20+ and npm)"
    );
    std::fs::create_dir_all(dir).expect("scratch dir");
    let file = dir.join("crosscheck.ts");
    std::fs::write(&file, source).expect("write ts");
    let output = Command::new("node")
        .arg(&tsc)
        .args([
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--pretty",
            "false",
            "--skipLibCheck",
        ])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("could not run node ({e}): install Node.js 20+ to run this test")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = std::collections::BTreeSet::new();
    for line in stdout.lines() {
        // crosscheck.ts(12,5): error TS2322: …
        if let Some(rest) = line.split_once(".ts(").map(|(_, r)| r)
            && let Some(n) = rest.split(',').next().and_then(|n| n.parse().ok())
        {
            lines.insert(n);
        }
    }
    assert!(
        output.status.success() || !lines.is_empty(),
        "tsc failed without reporting lines:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    lines
}

#[test]
fn ts_rs_and_schemars_agree_on_the_wire() {
    let subjects: Vec<(Subject, Vec<Value>)> = vec![
        (
            subject::<Nested>(),
            nested_samples()
                .iter()
                .map(|n| serde_json::to_value(n).expect("ser"))
                .collect(),
        ),
        (
            subject::<Vec<Internally>>(),
            vec![json!([{"type": "Unit"}, {"type": "Struct", "a": 1, "b": "x"}])],
        ),
        (subject::<Option<Level>>(), vec![json!(null), json!("LOW")]),
        (
            subject::<Constrained>(),
            vec![json!({"name": "ab", "n": 3, "tags": ["x", "y"]})],
        ),
        (
            subject::<Page<Level>>(),
            vec![json!({"items": ["VERY_HIGH"], "next": null})],
        ),
    ];

    let mut declarations: Vec<String> = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    for (subject, samples) in &subjects {
        for d in &subject.declarations {
            if !declarations.contains(d) {
                declarations.push(d.clone());
            }
        }
        for (i, sample) in samples.iter().enumerate() {
            let output_issues = subject
                .output_schema
                .validate(sample, UnknownFields::Ignore);
            assert!(
                output_issues.is_empty(),
                "output schema rejects what serde wrote ({}):\n{sample}\n{output_issues:#?}",
                subject.ts_type
            );
            let structural_ok = |v: &Value| {
                !subject
                    .input_schema
                    .validate(v, UnknownFields::Ignore)
                    .iter()
                    .any(|i| i.is_structural())
            };
            let fully_ok = |v: &Value| {
                subject
                    .input_schema
                    .validate(v, UnknownFields::Ignore)
                    .is_empty()
            };
            cases.push(Case {
                label: format!("{} sample {i}", subject.ts_type),
                ts_type: subject.ts_type.clone(),
                value: sample.clone(),
                role: Role::Output,
                schema_structural_ok: structural_ok(sample),
                schema_ok: fully_ok(sample),
                serde_ok: (subject.serde_ok)(sample),
                serde_checks_all: subject.input_schema.serde_checks_all(),
            });
            for (j, mutant) in mutants(sample).into_iter().enumerate() {
                cases.push(Case {
                    label: format!("{} sample {i} mutant {j}", subject.ts_type),
                    ts_type: subject.ts_type.clone(),
                    schema_structural_ok: structural_ok(&mutant),
                    schema_ok: fully_ok(&mutant),
                    serde_ok: (subject.serde_ok)(&mutant),
                    serde_checks_all: subject.input_schema.serde_checks_all(),
                    value: mutant,
                    role: Role::Input,
                });
            }
        }
    }

    let mut source = String::new();
    for d in &declarations {
        source.push_str(&d.replace('\n', " "));
        source.push('\n');
    }
    let first_case_line = declarations.len() + 1;
    for (i, case) in cases.iter().enumerate() {
        let _ = writeln!(
            source,
            "export const c{i}: {} = {};",
            case.ts_type, case.value
        );
    }
    let dir = repo_root().join("target/crosscheck");
    let errors = tsc_error_lines(&dir, &source);
    assert!(
        errors.iter().all(|l| *l >= first_case_line),
        "the declarations themselves do not compile:\n{source}"
    );

    let mut problems = Vec::new();
    let mut admitted_mutants = 0;
    let mut rejected_mutants = 0;
    for (i, case) in cases.iter().enumerate() {
        let ts_ok = !errors.contains(&(first_case_line + i));
        match case.role {
            Role::Output => {
                if !(ts_ok && case.schema_structural_ok && case.serde_ok) {
                    problems.push(format!(
                        "{}: serde wrote {} but ts={ts_ok} schema={} serde={}",
                        case.label, case.value, case.schema_structural_ok, case.serde_ok
                    ));
                }
            }
            Role::Input => {
                if ts_ok {
                    admitted_mutants += 1;
                } else {
                    rejected_mutants += 1;
                }
                if ts_ok && !(case.schema_structural_ok && case.serde_ok) {
                    problems.push(format!(
                        "{}: TS admits {} but schema={} serde={}",
                        case.label, case.value, case.schema_structural_ok, case.serde_ok
                    ));
                }
                // The dispatcher skips validation for values serde accepts when serde checks
                // everything the schema says: then serde must never accept what the schema
                // refuses.
                if case.serde_checks_all && case.serde_ok && !case.schema_ok {
                    problems.push(format!(
                        "{}: serde accepts {} but the schema, which serde was said to check fully, refuses it",
                        case.label, case.value
                    ));
                }
                if case.schema_structural_ok && !case.serde_ok {
                    problems.push(format!(
                        "{}: the schema accepts {} but serde rejects it",
                        case.label, case.value
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} disagreement(s) in {} cases:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
    // The fast path is exercised: some subjects are fully checked by serde.
    assert!(
        cases.iter().any(|c| c.serde_checks_all) && cases.iter().any(|c| !c.serde_checks_all),
        "the corpus should hold inputs serde checks fully and inputs it does not"
    );
    // The mutations must actually exercise both verdicts.
    assert!(
        admitted_mutants > 10 && rejected_mutants > 100,
        "admitted {admitted_mutants}, rejected {rejected_mutants}"
    );
}

// ---- The superjson transformer: what arrives is what the types say. ----

mod js_corpus {
    use oxrpc::js::{self, BigInt, Date, Map, Set};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use ts_rs::TS;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    #[ts(rename_all = "camelCase")]
    pub(super) struct Dated {
        pub(super) when: Date,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        pub(super) until: Option<Date>,
        pub(super) count: BigInt<u64>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
    #[serde(tag = "kind")]
    pub(super) enum Happening {
        Meeting { at: Date, people: Set<String> },
        Deadline { at: Date },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    #[ts(rename_all = "camelCase")]
    pub(super) struct JsCorpus {
        pub(super) at: Date,
        pub(super) big: BigInt<i64>,
        pub(super) huge: BigInt<u128>,
        pub(super) tags: Set<String>,
        pub(super) by_day: Map<u32, Vec<Date>>,
        pub(super) scores: Map<String, BigInt<i64>>,
        pub(super) dated: Vec<Dated>,
        pub(super) happening: Happening,
        pub(super) maybe: Option<Set<u8>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        pub(super) note: Option<String>,
        #[serde(default)]
        pub(super) any: js::Value,
    }

    pub(super) fn date(ms: i64) -> Date {
        Date::from_millis(ms).expect("in range")
    }

    pub(super) fn samples() -> Vec<JsCorpus> {
        let full = JsCorpus {
            at: date(1_704_164_645_123),
            big: BigInt(i64::MIN),
            huge: BigInt(u128::MAX),
            tags: ["b", "a.dotted"].into_iter().map(String::from).collect(),
            by_day: [(1, vec![date(0), date(86_400_000)]), (2, vec![])]
                .into_iter()
                .collect(),
            scores: [("x".to_owned(), BigInt(1 << 62))].into_iter().collect(),
            dated: vec![
                Dated {
                    when: date(1),
                    until: Some(date(2)),
                    count: BigInt(u64::MAX),
                },
                Dated {
                    when: date(3),
                    until: None,
                    count: BigInt(0),
                },
            ],
            happening: Happening::Meeting {
                at: date(5),
                people: ["ann".to_owned()].into_iter().collect(),
            },
            maybe: Some([1, 2].into_iter().collect()),
            note: Some("n".to_owned()),
            any: js::Value::Map(vec![(
                js::Value::Date(date(7)),
                js::Value::Set(vec![js::Value::BigInt("9".into()), js::Value::Undefined]),
            )]),
        };
        let sparse = JsCorpus {
            tags: Set::default(),
            by_day: Map::default(),
            scores: Map::default(),
            dated: vec![],
            happening: Happening::Deadline { at: date(-1) },
            maybe: None,
            note: None,
            any: js::Value::Undefined,
            ..full
        };
        vec![full, sparse]
    }
}

/// Every value of a corpus of JavaScript value types is encoded by the server's superjson
/// encoder, decoded by the real `superjson` package in Node, and written back as a TypeScript
/// expression (`new Date(…)`, `…n`, `new Set([…])`, `new Map([…])`, `undefined`): tsc must
/// accept each against the generated type, while the same values as plain JSON (without the
/// transformer) must be refused — the types promise what only superjson delivers.
#[test]
fn superjson_values_arrive_as_their_types_say() {
    use js_corpus::{Happening, JsCorpus, date, samples};
    use oxrpc::js::{BigInt, Date, Map, Set, to_superjson};

    let mut declarations: Vec<String> = Vec::new();
    let mut cases: Vec<(String, String, Value)> = Vec::new(); // type, envelope, plain JSON
    let mut add = |subject: Subject, envelopes: Vec<(String, Value)>| {
        for d in subject.declarations {
            if !declarations.contains(&d) {
                declarations.push(d);
            }
        }
        for (envelope, plain) in envelopes {
            cases.push((subject.ts_type.clone(), envelope, plain));
        }
    };
    fn encoded<T: Serialize>(values: &[T]) -> Vec<(String, Value)> {
        values
            .iter()
            .map(|v| {
                let plain = serde_json::to_value(v).expect("plain");
                (to_superjson(v).expect("superjson"), plain)
            })
            .collect()
    }
    add(subject::<JsCorpus>(), encoded(&samples()));
    add(
        subject::<Vec<Happening>>(),
        encoded(&[vec![
            Happening::Deadline { at: date(9) },
            Happening::Meeting {
                at: date(10),
                people: Set::default(),
            },
        ]]),
    );
    add(subject::<Date>(), encoded(&[date(42)]));
    add(
        subject::<Map<String, Set<BigInt<i64>>>>(),
        encoded(&[[(
            "k".to_owned(),
            [BigInt(-3_i64)].into_iter().collect::<Set<_>>(),
        )]
        .into_iter()
        .collect::<Map<_, _>>()]),
    );

    // The real superjson decodes each envelope; each value comes back as a TS expression.
    let dir = repo_root().join("target/crosscheck-superjson");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let input = dir.join("envelopes.json");
    let envelopes: Vec<Value> = cases
        .iter()
        .map(|(_, e, _)| serde_json::from_str(e).expect("envelope is JSON"))
        .collect();
    std::fs::write(&input, serde_json::to_string(&envelopes).expect("json")).expect("write");
    let script = r#"
import superjson from 'superjson';
import { readFileSync } from 'node:fs';
const lit = (v) => {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (v instanceof Date) return `new Date(${v.getTime()})`;
  if (typeof v === 'bigint') return `${v}n`;
  if (v instanceof Set) return `new Set([${[...v].map(lit).join(', ')}])`;
  if (v instanceof Map) return `new Map([${[...v].map(([k, x]) => `[${lit(k)}, ${lit(x)}]`).join(', ')}])`;
  if (Array.isArray(v)) return `[${v.map(lit).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${lit(x)}`).join(', ')}}`;
  return JSON.stringify(v);
};
const envelopes = JSON.parse(readFileSync(process.env.ENVELOPES, 'utf8'));
console.log(JSON.stringify(envelopes.map((e) => lit(superjson.deserialize(e)))));
"#;
    let output = Command::new("node")
        .args(["--input-type=module", "-e", script])
        .env("ENVELOPES", &input)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| {
            panic!("could not run node ({e}): install Node.js 20+ to run this test")
        });
    assert!(
        output.status.success(),
        "node failed (is `npm ci` done at the repository root?):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expressions: Vec<String> =
        serde_json::from_slice(&output.stdout).expect("node printed the expressions");
    assert_eq!(expressions.len(), cases.len());

    let mut source = String::new();
    for d in &declarations {
        source.push_str(&d.replace('\n', " "));
        source.push('\n');
    }
    let first = declarations.len() + 1;
    for (i, ((ts_type, _, _), expression)) in cases.iter().zip(&expressions).enumerate() {
        let _ = writeln!(source, "export const c{i}: {ts_type} = {expression};");
    }
    let plain_first = first + cases.len();
    for (i, (ts_type, _, plain)) in cases.iter().enumerate() {
        let _ = writeln!(source, "export const p{i}: {ts_type} = {plain};");
    }
    let errors = tsc_error_lines(&dir, &source);
    let arrived_wrong: Vec<String> = (0..cases.len())
        .filter(|i| errors.contains(&(first + i)))
        .map(|i| format!("{}: {}", cases[i].0, expressions[i]))
        .collect();
    assert!(
        arrived_wrong.is_empty(),
        "what superjson delivers does not match the types:\n{}\n\n{source}",
        arrived_wrong.join("\n")
    );
    // Without the transformer every case would arrive as something else than its type says.
    let plain_accepted: Vec<usize> = (0..cases.len())
        .filter(|i| !errors.contains(&(plain_first + i)))
        .collect();
    assert!(
        plain_accepted.is_empty(),
        "plain JSON type-checks for cases {plain_accepted:?}: the corpus does not need superjson\n{source}"
    );
    // And the decoded values are the Rust values (the inputs' way back).
    for sample in samples() {
        let text = to_superjson(&sample).expect("superjson");
        let back: JsCorpus = oxrpc::js::from_superjson(&text).expect("decodes");
        // `any` is a js::Value: from plain JSON it cannot know its annotations.
        assert_eq!(
            JsCorpus {
                any: back.any.clone(),
                ..sample
            },
            back
        );
    }
}
