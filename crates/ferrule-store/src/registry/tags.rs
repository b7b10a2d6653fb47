//! Tags on any resource ARN.

use crate::registry::db::{Db, Tx, sql};
use crate::registry::error::RegistryError;

type Result<T> = std::result::Result<T, RegistryError>;

/// AWS's limit of tags per resource.
const MAX_TAGS: i64 = 50;

pub(super) async fn tag_resource(db: &Db, arn: &str, tags: &[(String, String)]) -> Result<()> {
    let mut tx = db.write(format!("tagging {arn:?}")).await?;
    for (key, value) in tags {
        tx.execute(sql!(
            "INSERT INTO resource_tags (arn, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (arn, key) DO UPDATE SET value = excluded.value",
            arn,
            key,
            value
        ))
        .await?;
    }
    let count = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM resource_tags WHERE arn = $1",
            arn
        ))
        .await?;
    if count > MAX_TAGS {
        // Dropping the transaction rolls the new tags back.
        return Err(RegistryError::LimitExceeded(format!(
            "A resource can have at most {MAX_TAGS} tags; {arn} would have {count}"
        )));
    }
    tx.commit().await
}

pub(super) async fn untag_resource(db: &Db, arn: &str, keys: &[String]) -> Result<()> {
    let mut tx = db.write(format!("untagging {arn:?}")).await?;
    for key in keys {
        tx.execute(sql!(
            "DELETE FROM resource_tags WHERE arn = $1 AND key = $2",
            arn,
            key
        ))
        .await?;
    }
    tx.commit().await
}

pub(super) async fn list_tags(db: &Db, arn: &str) -> Result<Vec<(String, String)>> {
    let mut tx = db.read(format!("listing the tags of {arn:?}")).await?;
    tx.fetch_all(sql!(
        "SELECT key, value FROM resource_tags WHERE arn = $1 ORDER BY key",
        arn
    ))
    .await
}

/// Removes the tags of every ARN ending in `suffix` (for example `:cert/{id}`): deleting a
/// resource deletes its tags, whatever region and account its ARN names.
pub(super) async fn delete_tags_of(tx: &mut Tx<'_>, suffix: &str) -> Result<()> {
    tx.execute(arn_suffix_is(
        "DELETE FROM resource_tags \
         WHERE substr(arn, CAST(length(arn) - $2 + 1 AS INTEGER)) = $1",
        suffix,
    ))
    .await?;
    Ok(())
}

/// Binds `$1` to `suffix` and `$2` to its length in characters, for a statement comparing
/// `substr(column, CAST(length(column) - $2 + 1 AS INTEGER)) = $1` (exact, unlike `LIKE`,
/// whose wildcards `_` and `%` may occur in names; the cast because PostgreSQL's `substr`
/// takes an INTEGER and `$2` is a BIGINT).
pub(super) fn arn_suffix_is(text: &'static str, suffix: &str) -> crate::registry::db::Sql {
    let chars = i64::try_from(suffix.chars().count()).unwrap_or(i64::MAX);
    sql!(text, suffix, chars)
}
