package accounting_test

import (
	"errors"
	"math"
	"testing"

	"github.com/aibos/worker/accounting"
)

func TestCalculate(t *testing.T) {
	for _, c := range []struct {
		name  string
		lines []accounting.Line
		want  accounting.Totals
	}{
		{"no tax", []accounting.Line{{Quantity: 3, UnitPrice: 250}}, accounting.Totals{Subtotal: 750, Total: 750}},
		{"discount then tax", []accounting.Line{{Quantity: 2, UnitPrice: 1000, Discount: 500, TaxRate: 2000}}, accounting.Totals{Subtotal: 1500, Tax: 300, Total: 1800}},
		{"half rounds up", []accounting.Line{{Quantity: 1, UnitPrice: 5, TaxRate: 1000}}, accounting.Totals{Subtotal: 5, Tax: 1, Total: 6}},
		{"below half rounds down", []accounting.Line{{Quantity: 1, UnitPrice: 4, TaxRate: 1000}}, accounting.Totals{Subtotal: 4, Tax: 0, Total: 4}},
		{"rounded per line, not per document", []accounting.Line{
			{Quantity: 1, UnitPrice: 5, TaxRate: 1000},
			{Quantity: 1, UnitPrice: 5, TaxRate: 1000},
		}, accounting.Totals{Subtotal: 10, Tax: 2, Total: 12}},
		{"rates per line", []accounting.Line{
			{Quantity: 1, UnitPrice: 10000, TaxRate: 2000},
			{Quantity: 1, UnitPrice: 10000, TaxRate: 550},
		}, accounting.Totals{Subtotal: 20000, Tax: 2550, Total: 22550}},
		{"full discount", []accounting.Line{{Quantity: 1, UnitPrice: 999, Discount: 999, TaxRate: 2000}}, accounting.Totals{}},
		{"large amounts stay exact", []accounting.Line{{Quantity: 1, UnitPrice: math.MaxInt64 / 2, TaxRate: 10000}},
			accounting.Totals{Subtotal: math.MaxInt64 / 2, Tax: math.MaxInt64 / 2, Total: math.MaxInt64 - 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := accounting.Calculate(c.lines)
			if err != nil || got != c.want {
				t.Fatalf("Calculate = %+v, %v; want %+v", got, err, c.want)
			}
			var tax int64
			for _, l := range c.lines {
				tax += l.Tax
			}
			if tax != got.Tax {
				t.Fatalf("line taxes sum to %d, the document's tax is %d", tax, got.Tax)
			}
		})
	}
}

func TestCalculateRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		line  accounting.Line
		field string
	}{
		{"zero quantity", accounting.Line{Quantity: 0, UnitPrice: 1}, "lines[0].quantity"},
		{"negative price", accounting.Line{Quantity: 1, UnitPrice: -1}, "lines[0].unitPrice"},
		{"negative discount", accounting.Line{Quantity: 1, UnitPrice: 1, Discount: -1}, "lines[0].discount"},
		{"discount above amount", accounting.Line{Quantity: 2, UnitPrice: 1, Discount: 3}, "lines[0].discount"},
		{"negative rate", accounting.Line{Quantity: 1, UnitPrice: 1, TaxRate: -1}, "lines[0].taxRate"},
		{"product overflows", accounting.Line{Quantity: math.MaxInt64, UnitPrice: 2}, "lines[0].unitPrice"},
		{"tax overflows", accounting.Line{Quantity: 1, UnitPrice: math.MaxInt64, TaxRate: 20000}, "lines[0].taxRate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := accounting.Calculate([]accounting.Line{c.line})
			var ie *accounting.InvalidError
			if !errors.As(err, &ie) || ie.Field != c.field || !errors.Is(err, accounting.ErrInvalid) {
				t.Fatalf("Calculate(%+v) = %v; want an InvalidError naming %s", c.line, err, c.field)
			}
		})
	}
}

// FuzzCalculate checks that no input panics and that accepted input keeps
// Total = Subtotal + Tax with the line taxes summing to Tax.
func FuzzCalculate(f *testing.F) {
	f.Add(int64(1), int64(5), int64(0), int64(1000))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(0), int64(10_000_000))
	f.Fuzz(func(t *testing.T, qty, price, discount, rate int64) {
		lines := []accounting.Line{{Quantity: qty, UnitPrice: price, Discount: discount, TaxRate: rate}}
		got, err := accounting.Calculate(lines)
		if err != nil {
			return
		}
		if got.Total != got.Subtotal+got.Tax || got.Tax != lines[0].Tax || got.Tax < 0 || got.Total < 0 {
			t.Fatalf("Calculate(%+v) = %+v", lines[0], got)
		}
	})
}

func TestMinorUnits(t *testing.T) {
	for code, want := range map[string]int{"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3, "IQD": 3, "CLF": 4, "VES": 2} {
		if got, err := accounting.MinorUnits(code); err != nil || got != want {
			t.Errorf("MinorUnits(%s) = %d, %v; want %d", code, got, err, want)
		}
	}
	for _, bad := range []string{"", "usd", "EURO", "XAU", "ZZZ"} {
		if _, err := accounting.MinorUnits(bad); !errors.Is(err, accounting.ErrInvalid) {
			t.Errorf("MinorUnits(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		minor int64
		code  string
		want  string
	}{
		{123456, "EUR", "1234.56"}, {-5, "EUR", "-0.05"}, {0, "USD", "0.00"}, {1500, "JPY", "1500"}, {1234, "KWD", "1.234"},
	} {
		if got, err := accounting.FormatAmount(c.minor, c.code); err != nil || got != c.want {
			t.Errorf("FormatAmount(%d, %s) = %q, %v; want %q", c.minor, c.code, got, err, c.want)
		}
	}
	if _, err := accounting.FormatAmount(1, "XXX1"); !errors.Is(err, accounting.ErrInvalid) {
		t.Errorf("FormatAmount of an unknown currency = %v, want ErrInvalid", err)
	}
}
