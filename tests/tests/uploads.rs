//! Upload procedures called as plain functions with inputs built in memory
//! (`Octets::from_bytes`, `FormData::from_parts`): how users unit-test them.

use oxrpc::ErrorCode;
use oxrpc::upload::{FormData, FormPart, Octets};
use oxrpc_tests::uploads::{photo, upload, upload_small};

#[tokio::test]
async fn upload_procedures_run_on_inputs_built_in_memory() {
    let size = upload(Octets::from_bytes(vec![7u8; 100_000]))
        .await
        .expect("upload")
        .size;
    assert_eq!(size, 100_000);
    // The procedure's own limit applies (64 KiB).
    let too_big = upload_small(Octets::from_bytes(vec![0u8; 70_000]))
        .await
        .expect_err("over the limit");
    assert_eq!(too_big.code(), ErrorCode::PayloadTooLarge);

    let done = photo(FormData::from_parts([
        FormPart::text("caption", "sunset"),
        FormPart::text("tag", "sky"),
        FormPart::file("photo", "p \"1\".jpg", "image/jpeg", &b"jpeg bytes"[..]),
    ]))
    .await
    .expect("photo");
    assert_eq!(done.caption, "sunset");
    assert_eq!(done.tags, ["sky"]);
    assert_eq!(done.files, ["photo:p %221%22.jpg:image/jpeg:10"]);

    let invalid = photo(FormData::from_parts([FormPart::text("caption", "")]))
        .await
        .expect_err("empty caption");
    assert_eq!(invalid.code(), ErrorCode::BadRequest);
    assert_eq!(invalid.issues().map(<[_]>::len), Some(1));
}
