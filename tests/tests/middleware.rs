//! Middleware, validation and the server-side caller, without sockets: `Router::call` goes
//! through exactly the same chain as a network call.

use oxrpc::{ErrorCode, UnknownFields};
use oxrpc_tests::Ctx;
use serde_json::{Value, json};

fn signed_in(token: &str) -> Ctx {
    Ctx {
        authorization: Some(token.to_owned()),
        ..Ctx::default()
    }
}

fn signup() -> Value {
    json!({
        "name": "ada", "email": "ada@example.com", "age": 36, "handle": "ada1",
        "tags": ["rust"], "address": {"city": "London", "zip": "12345"},
        "contact": {"kind": "email", "address": "ada@example.com"},
        "scores": {"math": 99}, "terms": "I agree"
    })
}

#[tokio::test]
async fn refined_context_reaches_the_handler_only_through_its_middleware() {
    let router = oxrpc_tests::router();
    let out: String = router
        .call(signed_in("ABC"), "secret", &())
        .await
        .expect("signed in");
    assert_eq!(out, "access granted to abc");
    let err = router
        .call::<_, String>(Ctx::default(), "secret", &())
        .await
        .expect_err("anonymous");
    assert_eq!(err.code(), ErrorCode::Unauthorized);

    // The router-level middleware guards `private.*` the same way.
    let err = router
        .call::<_, Value>(Ctx::default(), "private.me", &())
        .await
        .expect_err("anonymous");
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    let me: Value = router
        .call(signed_in("ADMIN"), "private.me", &())
        .await
        .expect("admin");
    assert_eq!(me, json!({"user": "root", "role": "admin"}));
}

#[tokio::test]
async fn stacks_and_meta() {
    let router = oxrpc_tests::router();
    let input = json!({"userId": "mallory"});
    let err = router
        .call::<_, String>(Ctx::default(), "admin.ban", &input)
        .await
        .expect_err("anon");
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    let err = router
        .call::<_, String>(signed_in("ABC"), "admin.ban", &input)
        .await
        .expect_err("member");
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(err.message().contains("Admin"), "{}", err.message());
    let out: String = router
        .call(signed_in("ADMIN"), "admin.ban", &input)
        .await
        .expect("admin");
    assert_eq!(out, "root banned mallory");
    // Middleware runs before validation: an anonymous bad input is still UNAUTHORIZED.
    let bad = json!({"userId": ""});
    let err = router
        .call::<_, String>(Ctx::default(), "admin.ban", &bad)
        .await
        .expect_err("anon");
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    let err = router
        .call::<_, String>(signed_in("ADMIN"), "admin.ban", &bad)
        .await
        .expect_err("bad");
    assert_eq!(err.code(), ErrorCode::BadRequest);
}

#[tokio::test]
async fn around_middleware_can_short_circuit() {
    let router = oxrpc_tests::router();
    let key = json!({"key": format!("rust-{}", std::process::id())});
    for _ in 0..3 {
        let _: String = router
            .call(Ctx::default(), "limited", &key)
            .await
            .expect("under the limit");
    }
    let err = router
        .call::<_, String>(Ctx::default(), "limited", &key)
        .await
        .expect_err("4th");
    assert_eq!(err.code(), ErrorCode::TooManyRequests);
}

#[tokio::test]
async fn validation_reports_every_issue_with_paths() {
    let router = oxrpc_tests::router();
    let ok: Value = router
        .call(Ctx::default(), "validated.signup", &signup())
        .await
        .expect("valid");
    assert_eq!(ok, json!({"name": "ada", "tags": 1}));

    let mut bad = signup();
    bad["name"] = json!("");
    bad["age"] = json!(200);
    bad["tags"] = json!(["x"]);
    bad["address"]["zip"] = json!("1");
    bad["contact"] = json!({"kind": "phone", "number": "abc"});
    bad["scores"]["art"] = json!(101);
    bad["terms"] = json!("no");
    let err = router
        .call::<_, Value>(Ctx::default(), "validated.signup", &bad)
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), ErrorCode::BadRequest);
    let mut found: Vec<(String, &str)> = err
        .issues()
        .expect("issues")
        .iter()
        .map(|i| (i.path_text(), i.code))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("address.zip".to_owned(), "invalid_string"),
            ("age".to_owned(), "too_big"),
            ("contact.number".to_owned(), "invalid_string"),
            ("name".to_owned(), "too_small"),
            ("scores.art".to_owned(), "too_big"),
            ("tags[0]".to_owned(), "too_small"),
            ("terms".to_owned(), "invalid_string"),
        ]
    );
}

#[tokio::test]
async fn unknown_fields_are_ignored_or_rejected() {
    let mut input = signup();
    input["nickname"] = json!("extra");
    input["address"]["planet"] = json!("earth");
    let lenient = oxrpc_tests::router();
    let _: Value = lenient
        .call(Ctx::default(), "validated.signup", &input)
        .await
        .expect("lenient");
    let strict = oxrpc_tests::router().unknown_fields(UnknownFields::Reject);
    let err = strict
        .call::<_, Value>(Ctx::default(), "validated.signup", &input)
        .await
        .expect_err("strict");
    let issues = err.issues().expect("issues");
    assert_eq!(issues.len(), 2, "{issues:#?}");
    assert!(issues.iter().all(|i| i.code == "unrecognized_keys"));
}

#[tokio::test]
async fn output_validation_is_opt_in() {
    let out: Value = oxrpc_tests::router()
        .call(Ctx::default(), "validated.badOutput", &())
        .await
        .expect("off");
    assert_eq!(out, json!({"n": 99}));
    let checked = oxrpc_tests::router().validate_outputs(true);
    let err = checked
        .call::<_, Value>(Ctx::default(), "validated.badOutput", &())
        .await
        .expect_err("on");
    assert_eq!(err.code(), ErrorCode::InternalServerError);
    assert_eq!(
        err.message(),
        "Internal server error: output validation failed"
    );
}
