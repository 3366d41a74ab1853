package prune

import (
	"fmt"
	"io"
	"strings"

	units "github.com/docker/go-units"
)

// binaryUnits are go-units' binary abbreviations, which the library does not export.
var binaryUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"}

// FormatSize formats a byte count the way the product's documentation shows it: "2.835 GiB".
// (go-units' BytesSize writes "2.835GiB"; administrators' scripts match the documented form.)
func FormatSize(bytes int64) string {
	return units.CustomSize("%.4g %s", float64(bytes), 1024.0, binaryUnits)
}

// WriteSummary writes the summary lines administrators know, then the counts of the other
// objects, one "<verb> N <kind>" line each so that scripts can parse them all alike.
func WriteSummary(w io.Writer, s Summary) {
	verb, freed := "Deleted", "Freed up"
	if s.DryRun {
		verb, freed = "Would delete", "Would free up"
	}
	fmt.Fprintf(w, "%s %d blobs\n", verb, s.Count[KindBlob])
	fmt.Fprintf(w, "%s %s of disk space\n", freed, FormatSize(s.Bytes[KindBlob]))
	if s.DryRun {
		fmt.Fprintln(w, "Use -prune=delete to actually delete the data")
	}
	for k := range numKinds {
		if k != KindBlob { // its lines come first
			fmt.Fprintf(w, "%s %s\n", verb, s.count(k))
		}
	}
}

// String counts what the summary holds in one line: "7 blobs (14 MiB), 1 repositories, ...,
// 0 uploads (0 B)".
func (s Summary) String() string {
	parts := []string{s.count(KindBlob)}
	for k := range numKinds {
		if k != KindBlob {
			parts = append(parts, s.count(k))
		}
	}
	return strings.Join(parts, ", ")
}

// count is "N <kinds>", with their size for the sized kinds: "0 uploads (0 B)".
func (s Summary) count(k Kind) string {
	if kinds[k].sized {
		return fmt.Sprintf("%d %s (%s)", s.Count[k], kinds[k].plural, FormatSize(s.Bytes[k]))
	}
	return fmt.Sprintf("%d %s", s.Count[k], kinds[k].plural)
}
