package schedule

import (
	"fmt"
	"strconv"
	"strings"
)

// The cron library is lenient where a reader would be misled: it drops empty
// list items ("1,,2"), reads "*-5" as "*", "?" as "*" in any field, "+5" as 5,
// and wraps descending ranges in every field ("50-10" in minutes). It also
// rejects "THU" (a capital H reads as its hash syntax) and knows the
// last-weekday form only as "5#L", not Quartz's "5L". normalizeField checks
// each field against the grammar doc.go states before the library sees it,
// and rewrites what the library spells differently.

// fieldRule describes what one field accepts beyond numbers and ranges.
type fieldRule struct {
	names map[string]int // accepted names (lower case), nil if none
	wrap  bool           // descending ranges wrap around (FRI-MON)
	extra bool           // "?" and the L, W and # forms of the day fields
}

var (
	monthNames = map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}
	weekdayNames = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

	fieldRules = map[string]fieldRule{
		"second":       {},
		"minute":       {},
		"hour":         {},
		"day-of-month": {extra: true},
		"month":        {names: monthNames, wrap: true},
		"day-of-week":  {names: weekdayNames, wrap: true, extra: true},
	}
)

// fieldProblem is a field's fault: the text at fault and why.
type fieldProblem struct {
	value, reason string
}

// normalizeField checks one field of a spec and returns it in the form the
// cron library reads.
func normalizeField(field, text string) (string, *fieldProblem) {
	rule := fieldRules[field]
	items := strings.Split(text, ",")
	for i, item := range items {
		if item == "" {
			return "", &fieldProblem{text, "has an empty list item; remove the extra comma"}
		}
		norm, reason := normalizeItem(field, rule, strings.ToLower(item))
		if reason != "" {
			return "", &fieldProblem{item, reason}
		}
		items[i] = norm
	}
	return strings.Join(items, ","), nil
}

// normalizeItem checks one list item (lower case) of a field.
func normalizeItem(field string, rule fieldRule, item string) (string, string) {
	if rule.extra {
		if norm, ok, reason := dayForm(field, rule, item); ok || reason != "" {
			return norm, reason
		}
	}
	base, step, stepped := strings.Cut(item, "/")
	if stepped && !isDigits(step) {
		return "", fmt.Sprintf("step %q is not a number", step)
	}
	switch {
	case base == "*":
		return item, ""
	case base == "?":
		if !rule.extra {
			return "", `"?" is accepted only in day-of-month and day-of-week; use "*"`
		}
		if stepped {
			return "", `"?" takes no step; use "*/n"`
		}
		return item, ""
	}
	lo, hi, ranged := strings.Cut(base, "-")
	if lo == "*" || lo == "?" {
		return "", fmt.Sprintf("%q cannot start a range; write %q alone or a range such as 1-5", lo, lo)
	}
	from, reason := fieldValue(rule, lo)
	if reason != "" {
		return "", reason
	}
	if !ranged {
		return item, ""
	}
	to, reason := fieldValue(rule, hi)
	if reason != "" {
		return "", reason
	}
	if from > to && !rule.wrap {
		return "", fmt.Sprintf("runs backwards (%d > %d); ranges wrap around only in month and day-of-week", from, to)
	}
	return item, ""
}

// dayForm checks the day fields' own forms: "?" and L, L-n, LW and nW in
// day-of-month; dL, d#L and d#n in day-of-week. ok reports that item is one
// of them (norm is then its library spelling); a non-empty reason rejects it.
func dayForm(field string, rule fieldRule, item string) (norm string, ok bool, reason string) {
	if field == "day-of-month" {
		switch {
		case item == "l" || item == "lw":
			return item, true, ""
		case strings.HasPrefix(item, "l-"):
			if !isDigits(item[2:]) {
				return "", false, `"L-n" needs a number of days before the last, such as L-3`
			}
			return item, true, ""
		case strings.HasPrefix(item, "l"):
			return "", false, `after "L" only "W" or "-n" may follow (LW, L-3)`
		case strings.HasSuffix(item, "w"):
			if !isDigits(item[:len(item)-1]) {
				return "", false, `"W" follows a single day of the month, such as 15W, or "L" (LW)`
			}
			return item, true, ""
		}
		return "", false, ""
	}
	day, nth, hasNth := strings.Cut(item, "#")
	switch {
	case hasNth:
		if nth != "l" && !isDigits(nth) {
			return "", false, `"#" is followed by the occurrence 1-5 or L, such as 1#2 or 5#L`
		}
	case strings.HasSuffix(item, "l"):
		day, nth = strings.TrimSuffix(item, "l"), "l"
	default:
		return "", false, ""
	}
	if day == "" {
		return "", false, "names no weekday; write the weekday first, such as 5L, FRI#L or 1#2"
	}
	if n, err := strconv.Atoi(nth); nth != "l" && (err != nil || n < 1 || n > 5) {
		return "", false, fmt.Sprintf("occurrence %q is not 1-5 or L", nth)
	}
	if _, reason := fieldValue(rule, day); reason != "" {
		return "", false, reason
	}
	return day + "#" + nth, true, ""
}

// fieldValue reads a number or, where the field has them, a name.
func fieldValue(rule fieldRule, s string) (int, string) {
	if v, ok := rule.names[s]; ok {
		return v, ""
	}
	if !isDigits(s) {
		if strings.ContainsAny(s, "lw#") {
			return 0, fmt.Sprintf("%q: L, W and # are accepted only in day-of-month (L, L-3, LW, 15W) and day-of-week (5L, 5#L, 1#2)", s)
		}
		if rule.names != nil {
			return 0, fmt.Sprintf("%q is not a number or a three-letter name", s)
		}
		return 0, fmt.Sprintf("%q is not a number", s)
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Sprintf("%q is out of range", s)
	}
	return v, ""
}

// isDigits reports whether s is a non-empty run of ASCII digits (no sign).
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
