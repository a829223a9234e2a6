package sqlitestore_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/sqlitestore"
)

// TestMigrationNumbersExistingEntries opens books written before entries
// had a seq (schema version 1, made here from the first migration's own
// SQL): the migration numbers each company's entries 1, 2, ... in id order
// and the next posting continues the sequence.
func TestMigrationNumbersExistingEntries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "books.db")
	ddl, err := os.ReadFile("../internal/sqlcore/migrations/0001_books.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{strings.ReplaceAll(string(ddl), "{{serial}}", "INTEGER PRIMARY KEY"),
		"CREATE TABLE accounting_schema (version BIGINT NOT NULL)", "INSERT INTO accounting_schema (version) VALUES (1)",
		"INSERT INTO companies VALUES ('t1', 'a', 'A', 'EUR'), ('t1', 'b', 'B', 'EUR')"}
	// Entries of two companies, interleaved.
	for _, c := range []string{"a", "b", "a", "a", "b"} {
		stmts = append(stmts, "INSERT INTO entries (tenant, company, entry_date, memo) VALUES ('t1', '"+c+"', '2026-01-01', 'm')")
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%.60s: %v", s, err)
		}
	}
	_ = db.Close()

	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatalf("open books of schema version 1: %v", err)
	}
	defer st.Close()
	for c, want := range map[string][]int64{"a": {1, 3, 4}, "b": {2, 5}} {
		books := accounting.Books{Tenant: "t1", Company: c}
		got, err := st.JournalSince(ctx, books, 0, 10)
		if err != nil || len(got) != len(want) {
			t.Fatalf("company %s after the migration: %+v, %v", c, got, err)
		}
		for i, e := range got {
			if e.ID != want[i] || e.Seq != int64(i+1) {
				t.Errorf("company %s entry %d: id %d seq %d, want id %d seq %d", c, i, e.ID, e.Seq, want[i], i+1)
			}
		}
	}
	// The company was written without a chart: add the two accounts the
	// entry needs.
	books := accounting.Books{Tenant: "t1", Company: "a"}
	for code, typ := range map[string]accounting.AccountType{accounting.AccountCash: accounting.Asset, accounting.AccountEquity: accounting.Equity} {
		if err := st.AccountCreate(ctx, books, accounting.Account{Code: code, Name: code, Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	e, err := st.JournalPost(ctx, books, accounting.JournalEntry{Date: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), Memo: "next", Lines: []accounting.EntryLine{
		{Account: accounting.AccountCash, Debit: 1, Currency: "EUR"}, {Account: accounting.AccountEquity, Credit: 1, Currency: "EUR"}}})
	if err != nil || e.Seq != 4 {
		t.Errorf("the first posting after the migration: %+v, %v; want seq 4", e, err)
	}
}
