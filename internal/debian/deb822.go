package debian

import (
	"fmt"
	"strings"
)

// Field is one "Name: value" field of a deb822 paragraph. Value has its
// surrounding blanks removed. A multi-line value is the raw text from its
// first non-blank character to the end of its last line: continuation
// lines keep their leading blank, so splitting on white space or lines
// works without copying.
type Field struct {
	Name, Value string
}

// Paragraph is one deb822 stanza, fields in file order.
type Paragraph []Field

// Get returns the value of the field name (matched case-insensitively,
// as deb822 field names are) and whether it was present.
func (p Paragraph) Get(name string) (string, bool) {
	for _, f := range p {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// Value returns the value of the field name, or "" when absent.
func (p Paragraph) Value(name string) string {
	v, _ := p.Get(name)
	return v
}

// ParseParagraphs parses deb822 text (Packages indexes, InRelease bodies,
// .sources files, control files) and calls each for every paragraph in
// order. The paragraph passed to each is reused: copy it to keep it.
//
// Values are substrings of data, so parsing a 50 MB index allocates almost
// nothing per field.
func ParseParagraphs(data string, each func(Paragraph) error) error {
	var para Paragraph
	valueStart := -1 // offset in data of the last field's value, -1 while it is empty
	flush := func() error {
		if len(para) == 0 {
			return nil
		}
		err := each(para)
		para = para[:0]
		return err
	}
	lineNo := 0
	for pos := 0; pos < len(data); {
		lineNo++
		start, end := pos, strings.IndexByte(data[pos:], '\n')
		if end < 0 {
			end = len(data)
			pos = end
		} else {
			end += start
			pos = end + 1
		}
		line := data[start:end]
		lead, trimmed := trimBlanks(line)
		switch {
		case trimmed == "":
			if err := flush(); err != nil {
				return err
			}
		case line[0] == '#':
			// deb822 comment line.
		case line[0] == ' ' || line[0] == '\t':
			if len(para) == 0 {
				return fmt.Errorf("line %d: continuation line outside a field", lineNo)
			}
			lineEnd := start + lead + len(trimmed)
			if valueStart < 0 {
				valueStart = start + lead
			}
			para[len(para)-1].Value = data[valueStart:lineEnd]
		default:
			i := strings.IndexByte(line, ':')
			if i <= 0 {
				return fmt.Errorf("line %d: %q is not a \"Name: value\" field", lineNo, truncate(line, 60))
			}
			name := line[:i]
			if strings.ContainsAny(name, " \t") {
				return fmt.Errorf("line %d: field name %q contains a blank", lineNo, truncate(name, 60))
			}
			lead, value := trimBlanks(line[i+1:])
			valueStart = -1
			if value != "" {
				valueStart = start + i + 1 + lead
			}
			para = append(para, Field{Name: name, Value: value})
		}
	}
	return flush()
}

// trimBlanks strips spaces, tabs and CRs, and reports how many
// bytes were stripped in front.
func trimBlanks(s string) (lead int, trimmed string) {
	t := strings.TrimLeft(s, " \t\r")
	return len(s) - len(t), strings.TrimRight(t, " \t\r")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
