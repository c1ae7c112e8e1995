//! Stored credentials that cannot be opened (tampered with, moved to
//! another row, sealed with a key that is no longer configured) are said
//! to be so, everywhere: never a 500, never wrong data.

mod common;

use diesel::prelude::*;
use plugboard::db::schema::connections;
use reqwest::StatusCode;

const TOKEN: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";

/// Damages the stored ciphertext of `id` in one of the ways it can go bad.
fn damage(app: &common::TestApp, id: i64, how: &str) {
    let mut conn = app.db();
    match how {
        "tampered" => {
            let mut bytes: Vec<u8> = connections::table
                .find(id)
                .select(connections::secrets)
                .first::<Option<Vec<u8>>>(&mut conn)
                .unwrap()
                .expect("a sealed secret");
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
            diesel::update(connections::table.find(id)).set(connections::secrets.eq(bytes)).execute(&mut conn)
        }
        "unknown key" => diesel::update(connections::table.find(id))
            .set(connections::secrets_key_id.eq("retired-key"))
            .execute(&mut conn),
        _ => unreachable!(),
    }
    .expect("damage the row");
}

#[actix_web::test]
async fn the_edit_form_asks_for_credentials_it_cannot_decrypt_and_a_save_keeps_nothing_wrong() {
    for how in ["tampered", "unknown key"] {
        let app = common::spawn().await;
        let id = app.create("github", "Damaged", &[("token", TOKEN)]).await;
        damage(&app, id, how);

        let form = app.get(&format!("/connections/{id}/edit")).await;
        assert_eq!(form.status, StatusCode::OK, "{how}: {}", form.body);
        let summary = form.text_of("#form-summary");
        assert!(summary.contains("cannot decrypt the stored credentials"), "{how}: {summary}");
        assert!(summary.contains("Enter them again"), "{how}: {summary}");
        assert!(!form.body.contains("A value is stored"), "{how}: a value it cannot open is not 'stored'");

        // Saving with the secret left blank changes nothing and says why.
        let before = app.snapshot();
        let version = app.stored(id).unwrap().version.to_string();
        let fields = [
            ("component", "github"),
            ("auth_method", "token"),
            ("version", version.as_str()),
            ("name", "Damaged, renamed"),
        ];
        for page in [
            app.post(&format!("/connections/{id}"), &fields).await,
            app.hx_post(&format!("/connections/{id}"), &fields).await,
        ] {
            assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{how}: {}", page.body);
            assert!(page.body.contains("cannot be decrypted; enter it again"), "{how}: {}", page.body);
        }
        assert_eq!(app.snapshot(), before, "{how}: nothing changed");

        // Typing the secret again saves it, sealed afresh.
        let mut retyped = fields.to_vec();
        retyped.push(("field:token", TOKEN));
        let page = app.post(&format!("/connections/{id}"), &retyped).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{how}: {}", page.body);
        let secrets = app.secrets(plugboard::environment::Environment::Development, id).expect("opens again");
        assert_eq!(secrets.get("token").map(String::as_str), Some(TOKEN));
    }
}

#[actix_web::test]
async fn test_on_a_connection_it_cannot_decrypt_reads_not_active_with_the_reason() {
    for how in ["tampered", "unknown key"] {
        let app = common::spawn().await;
        let id = app.create("github", "Damaged", &[("token", TOKEN)]).await;
        damage(&app, id, how);
        for page in [
            app.post(&format!("/connections/{id}/check"), &[]).await,
            app.hx_post(&format!("/connections/{id}/check"), &[]).await,
        ] {
            assert!(page.status.is_success() || page.status.is_redirection(), "{how}: {}", page.body);
        }
        let list = app.get("/").await;
        let reason = list.text_of(&format!("#connection-{id} .status-reason"));
        assert!(
            reason.starts_with("cannot decrypt the stored credentials: ")
                && reason.ends_with("; enter them again"),
            "{how}: {reason}"
        );
        assert!(list.text_of(&format!("#connection-{id} .badge")).contains("NOT ACTIVE"));
        // A background round says the same, and goes on.
        let state = app.state.clone();
        plugboard::jobs::run_due(&state, "test-owner", 1).await.expect("a round runs");
    }
}
