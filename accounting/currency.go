package accounting

import "fmt"

// minorUnits maps each active ISO 4217 currency code to its minor-unit
// exponent (the number of digits after the decimal point: 2 for USD, 0 for
// JPY, 3 for KWD), as in the ISO 4217 list (List One, 2025). Codes without
// minor units in the standard (precious metals, XDR, testing codes) are
// absent: a ledger in integer minor units cannot hold them.
//
// The table is committed rather than taken from golang.org/x/text/currency
// or github.com/bojanz/currency: both follow CLDR, which differs from ISO
// 4217 where it matters to a ledger (CLDR gives IQD 0 digits, ISO 3), and
// x/text does not know current codes such as VES, SLE and UYW.
var minorUnits = func() map[string]int {
	m := make(map[string]int, 180)
	for exp, codes := range [...][]string{
		0: {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
			"UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"},
		2: {"AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN",
			"BAM", "BBD", "BDT", "BGN", "BMD", "BND", "BOB", "BOV", "BRL", "BSD",
			"BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CNY",
			"COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP",
			"ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD",
			"GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR",
			"JMD", "KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP", "LKR",
			"LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU",
			"MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
			"NOK", "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR",
			"RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP",
			"SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
			"TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU",
			"UZS", "VED", "VES", "WST", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG"},
		3: {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"},
		4: {"CLF", "UYW"},
	} {
		for _, c := range codes {
			m[c] = exp
		}
	}
	return m
}()

// MinorUnits returns the minor-unit exponent of an ISO 4217 currency code
// (upper case, e.g. "USD"): 2 means amounts are held in hundredths. It
// returns an error wrapping ErrInvalid for a code that is not an active
// ISO 4217 currency with minor units.
func MinorUnits(code string) (int, error) {
	e, ok := minorUnits[code]
	if !ok {
		return 0, &InvalidError{Field: "currency", Reason: fmt.Sprintf("%q is not an active ISO 4217 currency code with minor units (want upper case, e.g. USD)", code)}
	}
	return e, nil
}

// FormatAmount writes an amount in minor units as a decimal in its
// currency's major unit: FormatAmount(-123456, "EUR") is "-1234.56". It
// returns an error wrapping ErrInvalid for an unknown currency.
func FormatAmount(minor int64, code string) (string, error) {
	exp, err := MinorUnits(code)
	if err != nil {
		return "", err
	}
	sign, u := "", uint64(minor)
	if minor < 0 {
		sign, u = "-", uint64(-minor)
	}
	if exp == 0 {
		return fmt.Sprintf("%s%d", sign, u), nil
	}
	div := uint64(1)
	for range exp {
		div *= 10
	}
	return fmt.Sprintf("%s%d.%0*d", sign, u/div, exp, u%div), nil
}
