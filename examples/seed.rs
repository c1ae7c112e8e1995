//! Fills a Plugboard data folder with many connections, for the benchmark
//! and for trying the list at scale:
//!
//!     cargo run --release --example seed -- <data dir> <count> [environment]
//!
//! Goes through the same store code as the web forms (secrets sealed with
//! the data folder's key, the counters and the search index kept by the
//! database), so what it writes is what users would create. DATABASE_URL,
//! when set, names the database as it does for Plugboard itself.

use std::collections::BTreeMap;

use diesel::Connection as _;
use plugboard::catalog::Catalog;
use plugboard::connections::{Draft, store};
use plugboard::crypto::Keyring;
use plugboard::environment::Environment;
use plugboard::tags::TagName;
use plugboard::web::assets::BuiltinIcons;
use secrecy::SecretString;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: seed <data dir> <count> [development|staging|production]";
    let data_dir = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let count: usize = args.next().ok_or(usage)?.parse()?;
    let environment = match args.next() {
        Some(e) => Environment::parse(&e).ok_or(usage)?,
        None => Environment::Development,
    };
    let mut settings = plugboard::Settings::with_data_dir(&data_dir);
    settings.database_url = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    std::fs::create_dir_all(&data_dir)?;
    let (keyring, _) = Keyring::load_or_create(&settings.encryption_key_path())?;
    let catalog = Catalog::load(None, &BuiltinIcons)?;
    let (pool, _) = plugboard::db::connect(&settings.database_url(), 1, 10)?;
    let mut conn = pool.get()?;
    let tag_names = ["billing", "marketing", "ops", "eu", "us", "critical", "sandbox", "team-a"];
    // An environment uses a few dozen services, not the whole catalog: the
    // sidebar lists each one used, so seeding all 200 would measure a list
    // nobody has. These fifty are among those automation users connect most.
    let components: Vec<_> =
        catalog.components().iter().filter(|c| SEEDED.contains(&c.key.as_str())).cloned().collect();
    if components.len() != SEEDED.len() {
        return Err("a component of SEEDED is not in the catalog".into());
    }
    let components = &components[..];
    // A thousand rows per transaction: one commit each, not one per row.
    for batch in (0..count).collect::<Vec<_>>().chunks(1000) {
        conn.transaction(|conn| {
            for &i in batch {
                insert_one(conn, &keyring, components, &tag_names, i, environment)?;
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        })?;
    }
    if let plugboard::db::DbConnection::Postgres(_) = &mut *conn {
        // What autovacuum would do a little later: without statistics the
        // planner guesses, and the first minutes after a bulk load are slow.
        diesel::RunQueryDsl::execute(diesel::sql_query("ANALYZE"), &mut *conn)?;
    }
    println!("seeded {count} connections into {} ({})", data_dir.display(), environment.as_str());
    Ok(())
}

const SEEDED: [&str; 50] = [
    "gmail",
    "google_sheets",
    "google_drive",
    "google_calendar",
    "slack",
    "github",
    "gitlab",
    "stripe",
    "hubspot",
    "salesforce",
    "notion",
    "airtable",
    "asana",
    "trello",
    "jira",
    "confluence",
    "linear",
    "zendesk",
    "intercom",
    "freshdesk",
    "mailchimp",
    "sendgrid",
    "twilio",
    "discord",
    "microsoft_teams",
    "outlook",
    "onedrive",
    "dropbox",
    "box",
    "aws_s3",
    "aws_sqs",
    "shopify",
    "woocommerce",
    "quickbooks",
    "xero",
    "paypal",
    "square",
    "openai",
    "anthropic",
    "pipedrive",
    "monday",
    "clickup",
    "typeform",
    "calendly",
    "zoom",
    "datadog",
    "sentry",
    "pagerduty",
    "http",
    "telegram_bot",
];

fn insert_one(
    conn: &mut plugboard::db::DbConnection,
    keyring: &Keyring,
    components: &[plugboard::catalog::Component],
    tag_names: &[&str],
    i: usize,
    environment: Environment,
) -> Result<(), Box<dyn std::error::Error>> {
    let component = &components[i % components.len()];
    let method = &component.auth_methods[0];
    let mut parameters = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for field in component.settings.iter().chain(&method.fields) {
        let value = format!("{}-{i}", field.key);
        if field.secret {
            secrets.insert(field.key.clone(), SecretString::from(value));
        } else {
            parameters.insert(field.key.clone(), value);
        }
    }
    let draft = Draft {
        name: format!("{} {i}", component.name),
        auth_method: method.key.clone(),
        parameters,
        secrets,
        kept_secrets: Default::default(),
        tags: vec![TagName::parse(tag_names[i % tag_names.len()])?],
        author: Some("seed".to_owned()),
    };
    store::insert(conn, keyring, environment, &component.key, &draft, None)?;
    Ok(())
}
