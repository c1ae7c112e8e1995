//! A route asked with a method it does not answer says so (405) with
//! Plugboard's own page and headers; an address with no route says 404.

mod common;

use reqwest::StatusCode;

#[actix_web::test]
async fn a_wrong_method_is_405_and_an_unknown_path_404() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo", &[("token", "ghp_0123456789abcdefghijklmnopqrstuvwxyz")]).await;
    let before = app.snapshot();
    let token = app.csrf().await;
    for (method, path) in [
        ("GET", format!("/connections/{id}/check")),
        ("GET", "/environment".to_owned()),
        ("GET", "/sign-out".to_owned()),
        ("POST", "/connections/new".to_owned()),
        ("POST", format!("/connections/{id}/edit")),
        ("DELETE", format!("/connections/{id}")),
        ("PUT", "/tags".to_owned()),
        ("POST", "/admin/audit".to_owned()),
    ] {
        let request = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .header("X-CSRF-Token", &token)
            .form(&[("csrf_token", token.as_str())]);
        let page = common::TestApp::page(request.send().await.unwrap()).await;
        assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {}", page.body);
        assert!(page.body.contains("does not accept that kind of request"), "{method} {path}: {}", page.body);
        assert!(page.header("content-security-policy").is_some(), "{method} {path}: security headers");
    }
    for path in ["/nothing-here", "/connections/1/nothing", "/admin/nothing"] {
        let page = app.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.body.contains("There is no page at this address"), "{path}: {}", page.body);
    }
    assert_eq!(app.snapshot(), before);
}
