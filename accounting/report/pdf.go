package report

import (
	"bytes"
	"fmt"
	"time"

	"github.com/go-pdf/fpdf"
)

// pdfDoc is a one-table PDF: a title, a subtitle and rows of cells, with
// the core Helvetica font (no font files to ship; text in Windows-1252).
type pdfDoc struct {
	title, subtitle string
	widths          []float64 // mm, one per column
	right           []bool    // right-aligned (amounts)
	header          []string
	rows            [][]string
	date            time.Time // creation date: the report's, so a rerun writes the same bytes
}

func (d *pdfDoc) bytes() ([]byte, error) {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetCreationDate(d.date)
	f.SetModificationDate(d.date)
	f.SetCatalogSort(true)
	tr := f.UnicodeTranslatorFromDescriptor("")
	f.SetTitle(d.title, true)
	f.SetProducer("aibos-worker", false)
	f.SetAutoPageBreak(true, 15)
	f.AddPage()
	f.SetFont("Helvetica", "B", 14)
	f.CellFormat(0, 8, tr(d.title), "", 1, "L", false, 0, "")
	f.SetFont("Helvetica", "", 10)
	f.CellFormat(0, 6, tr(d.subtitle), "", 1, "L", false, 0, "")
	f.Ln(3)
	row := func(cells []string, style string) {
		f.SetFont("Helvetica", style, 8)
		for i, c := range cells {
			align := "L"
			if d.right[i] {
				align = "R"
			}
			f.CellFormat(d.widths[i], 5, tr(c), "B", 0, align, false, 0, "")
		}
		f.Ln(-1)
	}
	row(d.header, "B")
	for _, r := range d.rows {
		style := ""
		if r[0] == "total" {
			style = "B"
		}
		row(r, style)
	}
	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		return nil, fmt.Errorf("write pdf %q: %w", d.title, err)
	}
	return buf.Bytes(), nil
}

func (r *Report) subtitle() string {
	return fmt.Sprintf("%s (%s/%s), as of %s", r.Company.Name, r.Company.Tenant, r.Company.ID, day(r.Date))
}

// TrialBalancePDF writes the trial balance as a PDF with the CSV's rows.
func (r *Report) TrialBalancePDF() ([]byte, error) {
	rows, err := csvRows(r.TrialBalanceCSV)
	if err != nil {
		return nil, err
	}
	return (&pdfDoc{title: "Trial balance", subtitle: r.subtitle(), date: r.Date,
		widths: []float64{16, 50, 20, 16, 26, 26, 26}, right: []bool{false, false, false, false, true, true, true},
		header: rows[0], rows: rows[1:]}).bytes()
}

// AgingPDF writes the receivables aging as a PDF with the CSV's rows.
func (r *Report) AgingPDF() ([]byte, error) {
	rows, err := csvRows(r.AgingCSV)
	if err != nil {
		return nil, err
	}
	return (&pdfDoc{title: "Receivables aging", subtitle: r.subtitle(), date: r.Date,
		widths: []float64{26, 12, 22, 14, 20, 20, 20, 20, 20, 16}, right: []bool{false, true, false, false, false, false, true, true, true, false},
		header: rows[0], rows: rows[1:]}).bytes()
}

// Files returns every file of the report by name.
func (r *Report) Files() (map[string][]byte, error) {
	out := map[string][]byte{}
	for name, f := range map[string]func() ([]byte, error){
		TrialBalanceCSV: r.TrialBalanceCSV, TrialBalancePDF: r.TrialBalancePDF, AgingCSV: r.AgingCSV, AgingPDF: r.AgingPDF,
	} {
		b, err := f()
		if err != nil {
			return nil, err
		}
		out[name] = b
	}
	return out, nil
}

func day(t time.Time) string { return t.Format(time.DateOnly) }
