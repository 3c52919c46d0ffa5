//! What the feed needs to know of a table: its columns and types (the payload's `columns`, the values'
//! conversion), its primary key (the RLS check) and whether row level security is on. Read per poll, so an
//! altered table is seen at the next change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio_postgres::Client;

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// `pg_type.typname`: what the payload's `columns` say (`int8`, `timestamptz`, `_text`).
    pub typname: String,
    /// The type as SQL can name it (`atttypid::regtype`), for casting the primary key's text in the RLS check.
    pub sql_type: String,
    /// `quote_ident(name)`.
    pub quoted: String,
    pub is_pk: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub oid: u32,
    /// `schema.table`, quoted as SQL needs it.
    pub quoted: String,
    pub rls: bool,
    /// In `attnum` order, dropped columns left out.
    pub columns: Vec<Column>,
}

impl TableInfo {
    pub fn typname(&self, column: &str) -> Option<&str> {
        self.columns.iter().find(|c| c.name == column).map(|c| c.typname.as_str())
    }

    pub fn primary_key(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.is_pk)
    }
}

const TABLE: &str = "select c.oid, c.relrowsecurity, pg_catalog.format('%I.%I', n.nspname, c.relname),
       a.attname::text, t.typname::text, a.atttypid::pg_catalog.regtype::text, pg_catalog.quote_ident(a.attname),
       coalesce(a.attnum = any (pk.conkey), false)
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  join pg_catalog.pg_type t on t.oid = a.atttypid
  left join pg_catalog.pg_constraint pk on pk.conrelid = c.oid and pk.contype = 'p'
 where n.nspname = $1 and c.relname = $2
 order by a.attnum";

const SELECTABLE: &str = "select a.attname::text from pg_catalog.pg_attribute a
 where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
   and pg_catalog.has_column_privilege($2::text::name, a.attrelid, a.attnum, 'SELECT')";

/// Tables and column privileges looked up during one poll.
#[derive(Default)]
pub struct Catalog {
    tables: HashMap<(String, String), Option<Arc<TableInfo>>>,
    selectable: HashMap<(u32, String), Arc<HashSet<String>>>,
}

impl Catalog {
    /// The table, or None if it no longer exists.
    pub async fn table(
        &mut self,
        client: &Client,
        schema: &str,
        table: &str,
    ) -> Result<Option<Arc<TableInfo>>, tokio_postgres::Error> {
        let key = (schema.to_owned(), table.to_owned());
        if let Some(found) = self.tables.get(&key) {
            return Ok(found.clone());
        }
        let rows = client.query(TABLE, &[&schema, &table]).await?;
        let info = rows.first().map(|first| {
            Arc::new(TableInfo {
                oid: first.get(0),
                rls: first.get(1),
                quoted: first.get(2),
                columns: rows
                    .iter()
                    .map(|r| Column {
                        name: r.get(3),
                        typname: r.get(4),
                        sql_type: r.get(5),
                        quoted: r.get(6),
                        is_pk: r.get(7),
                    })
                    .collect(),
            })
        });
        self.tables.insert(key, info.clone());
        Ok(info)
    }

    /// The columns `role` may select (Realtime leaves the others out of the payload).
    pub async fn selectable(
        &mut self,
        client: &Client,
        table: &TableInfo,
        role: &str,
    ) -> Result<Arc<HashSet<String>>, tokio_postgres::Error> {
        let key = (table.oid, role.to_owned());
        if let Some(found) = self.selectable.get(&key) {
            return Ok(found.clone());
        }
        let rows = client.query(SELECTABLE, &[&table.oid, &role]).await?;
        let columns = Arc::new(rows.iter().map(|r| r.get::<_, String>(0)).collect::<HashSet<_>>());
        self.selectable.insert(key, columns.clone());
        Ok(columns)
    }
}
