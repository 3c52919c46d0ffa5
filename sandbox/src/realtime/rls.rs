//! Whether a subscriber may see a changed row, asked as Realtime asks it (apply_rls.sql): as the token's role,
//! with its claims in `request.jwt.claims`, select the row by primary key. It is the row's state now, not at
//! the change, that decides, as in Realtime. The transaction is rolled back: nothing is written.

use tokio_postgres::Client;

use super::catalog::TableInfo;
use super::hub::Subscriber;

/// `select exists (select 1 from <table> where <pk1> = $1::text::<type1> and ...)`.
pub fn visibility_sql(table: &TableInfo) -> String {
    let conditions: Vec<String> = table
        .primary_key()
        .enumerate()
        .map(|(i, column)| format!("{} = ${}::text::{}", column.quoted, i + 1, column.sql_type))
        .collect();
    format!("select exists (select 1 from {} where {})", table.quoted, conditions.join(" and "))
}

/// True when `subscriber` can select the row whose primary key is `key` (text values, key order).
pub async fn visible(
    client: &mut Client,
    table: &TableInfo,
    key: &[String],
    subscriber: &Subscriber,
) -> Result<bool, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction
        .query_one(
            "select pg_catalog.set_config('role', $1, true), pg_catalog.set_config('request.jwt.claims', $2, true)",
            &[&subscriber.role, &subscriber.claims],
        )
        .await?;
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        key.iter().map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
    let visible: bool = transaction.query_one(&visibility_sql(table), &params).await?.get(0);
    transaction.rollback().await?;
    Ok(visible)
}

#[cfg(test)]
mod tests {
    use super::super::catalog::Column;
    use super::*;

    #[test]
    fn the_check_selects_by_the_whole_primary_key() {
        let column = |name: &str, sql_type: &str, is_pk| Column {
            name: name.into(),
            typname: String::new(),
            sql_type: sql_type.into(),
            quoted: format!("\"{name}\""),
            is_pk,
        };
        let table = TableInfo {
            oid: 1,
            quoted: "public.\"Odd\"".into(),
            rls: true,
            columns: vec![column("a", "uuid", true), column("b", "text", false), column("c", "bigint", true)],
        };
        assert_eq!(
            visibility_sql(&table),
            "select exists (select 1 from public.\"Odd\" where \"a\" = $1::text::uuid and \"c\" = $2::text::bigint)"
        );
    }
}
