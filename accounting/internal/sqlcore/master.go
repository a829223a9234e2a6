package sqlcore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/aibos/worker/accounting"
)

// querier is what reads need: a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// CompanyCreate implements accounting.Store.
func (s *Store) CompanyCreate(ctx context.Context, c accounting.Company) (*accounting.Company, error) {
	b := accounting.Books{Tenant: c.Tenant, Company: c.ID}
	err := b.Check()
	if err == nil {
		_, err = accounting.MinorUnits(c.Currency)
	}
	if err == nil {
		err = s.write(ctx, false, func(tx *tx) error {
			if _, err := tx.exec("INSERT INTO companies (tenant, id, name, currency) VALUES ($1, $2, $3, $4)",
				c.Tenant, c.ID, c.Name, c.Currency); err != nil {
				return s.duplicate(err)
			}
			for _, a := range accounting.DefaultChart() {
				if err := insertAccount(tx, b, a); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("create company %q of tenant %q: %w", c.ID, c.Tenant, err)
	}
	return &c, nil
}

// duplicate maps a unique violation to accounting.ErrDuplicate.
func (s *Store) duplicate(err error) error {
	if s.d.Unique(err) {
		return accounting.ErrDuplicate
	}
	return err
}

func insertAccount(tx *tx, b accounting.Books, a accounting.Account) error {
	_, err := tx.exec("INSERT INTO accounts (tenant, company, code, name, type) VALUES ($1, $2, $3, $4, $5)",
		b.Tenant, b.Company, a.Code, a.Name, string(a.Type))
	return err
}

// CompanyGet implements accounting.Store.
func (s *Store) CompanyGet(ctx context.Context, b accounting.Books) (*accounting.Company, error) {
	c := accounting.Company{Tenant: b.Tenant, ID: b.Company}
	err := s.db.QueryRowContext(ctx, "SELECT name, currency FROM companies WHERE tenant = $1 AND id = $2",
		b.Tenant, b.Company).Scan(&c.Name, &c.Currency)
	if errors.Is(err, sql.ErrNoRows) {
		err = accounting.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get company %q of tenant %q: %w", b.Company, b.Tenant, err)
	}
	return &c, nil
}

// currency returns the books' currency, or ErrNotFound if the company does
// not exist.
func currency(ctx context.Context, q querier, b accounting.Books) (string, error) {
	if err := b.Check(); err != nil {
		return "", err
	}
	var c string
	err := q.QueryRowContext(ctx, "SELECT currency FROM companies WHERE tenant = $1 AND id = $2", b.Tenant, b.Company).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("company %q of tenant %q: %w", b.Company, b.Tenant, accounting.ErrNotFound)
	}
	return c, err
}

// txCurrency is currency inside a write transaction.
func txCurrency(tx *tx, b accounting.Books) (string, error) {
	if err := tx.check(); err != nil {
		return "", err
	}
	return currency(tx.ctx, tx.tx, b)
}

// CompanyList implements accounting.Store.
func (s *Store) CompanyList(ctx context.Context, tenant string) ([]accounting.Company, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id, name, currency FROM companies WHERE tenant = $1 ORDER BY id", tenant)
	if err != nil {
		return nil, fmt.Errorf("list companies of tenant %q: %w", tenant, err)
	}
	defer rows.Close()
	var out []accounting.Company
	for rows.Next() {
		c := accounting.Company{Tenant: tenant}
		if err := rows.Scan(&c.ID, &c.Name, &c.Currency); err != nil {
			return nil, fmt.Errorf("list companies of tenant %q: %w", tenant, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list companies of tenant %q: %w", tenant, err)
	}
	return out, nil
}

// Tenants implements accounting.Store.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	out, err := queryStrings(ctx, s.db, "SELECT DISTINCT tenant FROM companies ORDER BY tenant")
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

func queryStrings(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// AccountCreate implements accounting.Store.
func (s *Store) AccountCreate(ctx context.Context, b accounting.Books, a accounting.Account) error {
	err := a.Check()
	if err == nil {
		err = s.write(ctx, false, func(tx *tx) error {
			if _, err := txCurrency(tx, b); err != nil {
				return err
			}
			return s.duplicate(insertAccount(tx, b, a))
		})
	}
	if err != nil {
		return fmt.Errorf("create account %q in %s/%s: %w", a.Code, b.Tenant, b.Company, err)
	}
	return nil
}

// AccountList implements accounting.Store.
func (s *Store) AccountList(ctx context.Context, b accounting.Books) ([]accounting.Account, error) {
	if _, err := currency(ctx, s.db, b); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, "SELECT code, name, type FROM accounts WHERE tenant = $1 AND company = $2 ORDER BY code",
		b.Tenant, b.Company)
	if err != nil {
		return nil, fmt.Errorf("list accounts of %s/%s: %w", b.Tenant, b.Company, err)
	}
	defer rows.Close()
	var out []accounting.Account
	for rows.Next() {
		var a accounting.Account
		var typ string
		if err := rows.Scan(&a.Code, &a.Name, &typ); err != nil {
			return nil, fmt.Errorf("list accounts of %s/%s: %w", b.Tenant, b.Company, err)
		}
		a.Type = accounting.AccountType(typ)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts of %s/%s: %w", b.Tenant, b.Company, err)
	}
	return out, nil
}

// PartyCreate implements accounting.Store.
func (s *Store) PartyCreate(ctx context.Context, b accounting.Books, p accounting.Party) error {
	err := p.Check()
	if err == nil {
		err = s.write(ctx, false, func(tx *tx) error {
			if _, err := txCurrency(tx, b); err != nil {
				return err
			}
			_, err := tx.exec("INSERT INTO parties (tenant, company, kind, id, name) VALUES ($1, $2, $3, $4, $5)",
				b.Tenant, b.Company, string(p.Kind), p.ID, p.Name)
			return s.duplicate(err)
		})
	}
	if err != nil {
		return fmt.Errorf("create %s %q in %s/%s: %w", p.Kind, p.ID, b.Tenant, b.Company, err)
	}
	return nil
}

// exists returns ErrNotFound (naming what) unless q's query finds a row.
func exists(tx *tx, what string, q string, args ...any) error {
	var one int
	err := tx.queryRow(q, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, accounting.ErrNotFound)
	}
	return err
}
