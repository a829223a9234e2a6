package accounting

import (
	"fmt"
	"math"
	"math/bits"
)

// Totals are the sums of a document's lines.
type Totals struct {
	Subtotal int64 // sum of line Net
	Tax      int64 // sum of line Tax
	Total    int64 // Subtotal + Tax
}

// maxTaxRate caps a line's tax rate at 1000 % (basis points), enough for
// any excise duty while keeping products far from overflow.
const maxTaxRate = 10_000_000

// Calculate computes each line's Net and Tax in place and returns the
// document's totals. Tax is rounded half up PER LINE (0.5 minor units and
// above round up): the rule most tax authorities accept for invoices, and
// the one that lets a reader check each line on its own. Summing unrounded
// taxes and rounding once can differ by a few minor units; the ledger always
// equals the sum of the lines printed on the document. It returns an
// *InvalidError naming the line for a bad quantity, price, discount or rate,
// or an amount that does not fit in int64.
func Calculate(lines []Line) (Totals, error) {
	var t Totals
	for i := range lines {
		l := &lines[i]
		field := func(f string) string { return fmt.Sprintf("lines[%d].%s", i, f) }
		switch {
		case l.Quantity <= 0:
			return Totals{}, &InvalidError{field("quantity"), fmt.Sprintf("%d: want a positive whole number", l.Quantity)}
		case l.UnitPrice < 0:
			return Totals{}, &InvalidError{field("unitPrice"), fmt.Sprintf("%d: want minor units >= 0", l.UnitPrice)}
		case l.TaxRate < 0 || l.TaxRate > maxTaxRate:
			return Totals{}, &InvalidError{field("taxRate"), fmt.Sprintf("%d: want basis points from 0 to %d", l.TaxRate, maxTaxRate)}
		}
		hi, gross := bits.Mul64(uint64(l.Quantity), uint64(l.UnitPrice))
		if hi != 0 || gross > math.MaxInt64 {
			return Totals{}, &InvalidError{field("unitPrice"), "quantity × unit price does not fit in 64 bits"}
		}
		if l.Discount < 0 || l.Discount > int64(gross) {
			return Totals{}, &InvalidError{field("discount"), fmt.Sprintf("%d: want 0 to quantity × unit price (%d)", l.Discount, gross)}
		}
		l.Net = int64(gross) - l.Discount
		tax, ok := taxHalfUp(l.Net, l.TaxRate)
		if !ok {
			return Totals{}, &InvalidError{field("taxRate"), "the line's tax does not fit in 64 bits"}
		}
		l.Tax = tax
		if t.Subtotal, ok = add(t.Subtotal, l.Net); !ok {
			return Totals{}, &InvalidError{field("unitPrice"), "the document's subtotal does not fit in 64 bits"}
		}
		if t.Tax, ok = add(t.Tax, l.Tax); !ok {
			return Totals{}, &InvalidError{field("taxRate"), "the document's tax does not fit in 64 bits"}
		}
	}
	total, ok := add(t.Subtotal, t.Tax)
	if !ok {
		return Totals{}, &InvalidError{"lines", "the document's total does not fit in 64 bits"}
	}
	t.Total = total
	return t, nil
}

// taxHalfUp returns net × rate / 10000 rounded half up, in 128-bit
// arithmetic so that no product overflows, and false if the result does not
// fit in int64. net and rate are >= 0, so half up and half away from zero
// agree.
func taxHalfUp(net, rate int64) (int64, bool) {
	hi, lo := bits.Mul64(uint64(net), uint64(rate))
	lo, carry := bits.Add64(lo, 5000, 0)
	hi += carry
	if hi >= 10000 { // the quotient would not fit in 64 bits
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, 10000)
	return int64(q), q <= math.MaxInt64
}

// add returns a + b and whether it did not overflow, for a, b >= 0.
func add(a, b int64) (int64, bool) {
	s := a + b
	return s, s >= a
}
