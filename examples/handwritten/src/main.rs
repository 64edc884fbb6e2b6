//! Run with: `cargo run -p handwritten` (add `-- --port 0` for any free port).
//!
//! The same kind of API as the quickstart, registered without `#[procedure]`: everything the
//! macro does is a call to `Procedure::query` / `Procedure::mutation` you can write yourself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use oxrpc::{Error, ErrorCode, Procedure, Router, Server};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The context: a shared counter.
#[derive(Clone, Default)]
struct Ctx {
    counter: Arc<AtomicU64>,
}

#[derive(Deserialize, TS, JsonSchema)]
struct AddInput {
    by: u64,
}

#[derive(Debug, Serialize, Deserialize, TS, JsonSchema)]
struct Count {
    value: u64,
}

fn router() -> Router<Ctx> {
    Router::new()
        .add(
            Procedure::query("current", |ctx: Ctx, (): ()| async move {
                Ok::<_, Error>(Count {
                    value: ctx.counter.load(Ordering::SeqCst),
                })
            })
            .describe("The counter's value."),
        )
        .add(
            Procedure::mutation("add", |ctx: Ctx, input: AddInput| async move {
                if input.by == 0 {
                    return Err(Error::new(ErrorCode::BadRequest, "`by` must be at least 1"));
                }
                let value = ctx.counter.fetch_add(input.by, Ordering::SeqCst) + input.by;
                Ok(Count { value })
            })
            .describe("Adds `by` to the counter."),
        )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => 3001,
        [flag, n] if flag == "--port" => n
            .parse()
            .map_err(|_| std::io::Error::other("--port takes a number"))?,
        _ => return Err(std::io::Error::other("usage: handwritten [--port N]")),
    };
    let listening = Server::new(router()).bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}/trpc", listening.local_addr());
    listening
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hand_written_procedures_work_like_macro_ones() {
        let router = router();
        let ctx = Ctx::default();
        let out: Count = router
            .call(ctx.clone(), "add", &serde_json::json!({"by": 2}))
            .await
            .expect("add");
        assert_eq!(out.value, 2);
        let out: Count = router
            .call(ctx.clone(), "current", &())
            .await
            .expect("current");
        assert_eq!(out.value, 2);
        let err = router
            .call::<_, Count>(ctx, "add", &serde_json::json!({"by": 0}))
            .await
            .expect_err("by 0");
        assert_eq!(err.code(), ErrorCode::BadRequest);
    }

    #[test]
    fn hand_written_procedures_are_typed_for_typescript() {
        let dts = oxrpc_codegen::render(&router()).expect("render");
        assert!(
            dts.contains(
                "add: TRPCMutationProcedure<{ input: AddInput; output: Count; meta: object }>;"
            ),
            "{dts}"
        );
        assert!(
            dts.contains(
                "current: TRPCQueryProcedure<{ input: void; output: Count; meta: object }>;"
            ),
            "{dts}"
        );
        assert!(dts.contains("* Adds `by` to the counter."), "{dts}");
    }
}
